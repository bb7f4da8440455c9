"""Edges that speak HTTP: Twilio webhooks, the media-stream websocket, the JSON API."""
