"""Cloudflare's Worker Loader: ``env.LOADER.get(id, callback)`` runs handed-over code in an isolate."""
