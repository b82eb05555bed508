import click
@click.group()
def d1() -> None:
    """D1 databases."""
