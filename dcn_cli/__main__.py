from dcn_cli.commands import app

app(prog_name="dcn")
