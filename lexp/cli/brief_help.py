"""A command whose ``--help`` is brief and whose ``--help-all`` is whole.

``lexp render`` has some forty options; a newcomer needs a dozen of them, each in a line,
and a few examples. :func:`brief_help_command` makes a Typer command class that, for
``--help``, shows only the options named in its ``brief`` table, each with that table's
short text, and a short epilog; ``--help-all`` shows every option with its full help and
the full epilog. Parsing and completion see every option either way: only the help
text changes.
"""

from __future__ import annotations

from typer.core import TyperArgument, TyperCommand, TyperOption

FULL_HELP = "lexp.full_help"  # ctx.meta key: --help-all asked for the whole help


def brief_help_command(brief: dict[str, str], brief_epilog: str) -> type[TyperCommand]:
    """A TyperCommand class whose --help shows the parameters named in ``brief`` (their
    Python names) with the texts given there, and ``brief_epilog``; --help-all, every
    parameter with its declared help and the command's epilog."""

    class BriefHelpCommand(TyperCommand):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.params.append(TyperOption(
                param_decls=["--help-all"], is_flag=True, expose_value=False, is_eager=True,
                callback=_show_full_help,
                help="Show every option, with the details, and more examples."))

        def format_help(self, ctx, formatter) -> None:
            if ctx.meta.get(FULL_HELP):
                return super().format_help(ctx, formatter)
            saved = [(param, param.help, getattr(param, "hidden", False))
                     for param in self.params]
            epilog = self.epilog
            try:
                for param in self.params:
                    if param.name in brief:
                        param.help = brief[param.name]
                    elif not isinstance(param, TyperArgument) and param.name != "help_all":
                        param.hidden = True
                self.epilog = brief_epilog
                return super().format_help(ctx, formatter)
            finally:  # the command object lives on (tests, completion): leave it as it was
                self.epilog = epilog
                for param, text, hidden in saved:
                    param.help = text
                    if not isinstance(param, TyperArgument):
                        param.hidden = hidden

    return BriefHelpCommand


def _show_full_help(ctx, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import typer

    ctx.meta[FULL_HELP] = True
    typer.echo(ctx.get_help())
    ctx.exit()
