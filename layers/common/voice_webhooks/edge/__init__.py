"""The HTTP edge every webhook function shares: resolver, request, signature, URLs, routes."""
