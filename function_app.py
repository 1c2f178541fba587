"""The Azure Functions entry point: the HTTP API as one ASGI function, plus the queue and timer triggers.

``computeplane serve`` loads this same module and drives every function locally.
"""

import azure.functions as func

from functions import arm, dashboard, health, queues, timer
from shared.api.app import create_app
from shared.bootstrap import container

api = create_app(container)  # built from the settings on first use, never at import
app = func.AsgiFunctionApp(app=api, http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(queues.bp)
app.register_functions(timer.bp)
app.register_functions(health.bp)
app.register_functions(arm.blueprint(api))  # the ARM-shaped API, bearer-checked by the app
app.register_functions(dashboard.bp)
