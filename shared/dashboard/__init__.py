"""The dashboard: a static page (HTML, CSS, vanilla JS with an inline SVG chart) shipped as package data. It holds
no data: it reads the API with the key the user pastes, so it can be served without a key."""
