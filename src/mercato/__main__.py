from mercato.cli.main import app

app()
