"""The aiohttp application, its settings, command line and migrations."""
