"""Call signaling: one WebSocket per participant, messages relayed through a hub."""
