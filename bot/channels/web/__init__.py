"""The web chat: an aiohttp page, a websocket per visitor, uploads and downloads by HTTP."""
