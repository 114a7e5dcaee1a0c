"""The encrypted session dossier: models, crypto, blob store and the services around them."""
