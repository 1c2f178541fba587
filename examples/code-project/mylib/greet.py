def greeting(who: str) -> str:
    return f"hello from {who}, running the project's own code"
