from dcn_cli.cli import app

app(prog_name="dcn")
