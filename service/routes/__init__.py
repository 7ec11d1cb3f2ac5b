"""HTTP routes, one module per resource; `service.app` includes them."""
