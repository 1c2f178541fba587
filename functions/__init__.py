"""Thin trigger adapters: translate the trigger's input and call one handler. Nothing else lives here."""
