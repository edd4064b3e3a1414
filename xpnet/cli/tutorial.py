"""`xpnet tutorial`: run one of the tutorials exactly, through the library."""

from __future__ import annotations

import json

from .. import tutorials
from ..engine.plan import CHOICES as KERNEL_CHOICES
from ..errors import XpnetValueError
from .args import _common, _positive_int, _progress, check_destination, say


def add_parser(commands) -> None:
    """Add the `tutorial` subcommand to ``commands`` (the parser's subparsers)."""
    tutorial = commands.add_parser("tutorial", help="run one of the tutorials exactly, through the library",
                                   description="Run a tutorial program through xpnet (float64, the tutorial's own "
                                               "seed) and print what the tutorial prints. `xpnet tutorial list` "
                                               "names them.")
    _common(tutorial)
    tutorial.add_argument("name", metavar="NAME", help="a tutorial name, or `list`")
    tutorial.add_argument("--hidden", type=_positive_int, default=None,
                          help="hidden layer size (trask-alpha: 4, the text also shows 32; wildml-moons: 3)")
    tutorial.add_argument("--iterations", type=_positive_int, default=None,
                          help="passes to run instead of the tutorial's own count")
    tutorial.add_argument("--plot", default=None, metavar="FILE",
                          help="draw the tutorial's picture to FILE (.png, .svg or .pdf; needs matplotlib): "
                               "wildml-moons, wildml-hidden-sweep, trask-alpha")
    tutorial.add_argument("--activation", default=None, metavar="NAME",
                          help="hidden activation where the tutorial allows it (wildml-activations: relu or "
                               "sigmoid, default relu)")
    tutorial.add_argument("--kernels", choices=KERNEL_CHOICES, default="auto",
                          help="the models' whole-pass kernels, as for train; a pass of at most 256 rows never uses "
                               "one and no tutorial's pass is larger, so the printed digits are the tutorials' "
                               "whatever the choice (default: auto)")
    tutorial.set_defaults(handler=cmd_tutorial)


def cmd_tutorial(args) -> int:
    if args.name == "list":
        if args.json:
            say(json.dumps({name: t.summary for name, t in tutorials.TUTORIALS.items()}))
        else:
            width = max(map(len, tutorials.TUTORIALS))
            for name, t in tutorials.TUTORIALS.items():
                say(f"{name:<{width}}  {t.summary}")
        return 0
    if args.plot:
        from .. import plot

        plot.check_path(args.plot)
        check_destination("--plot", args.plot)
        if args.name not in plot.TUTORIAL_FIGURES:
            raise XpnetValueError(f"tutorial {args.name!r} has no picture; --plot works with "
                                  f"{', '.join(plot.TUTORIAL_FIGURES)}")
    result = tutorials.run(args.name, backend=args.backend, hidden=args.hidden, iterations=args.iterations,
                           activation=args.activation, kernels=args.kernels)
    if args.plot:
        plot.tutorial_figure(args.plot, result)
    say(json.dumps(result.data) if args.json else "\n".join(result.lines))
    if args.plot and not args.json:
        _progress(f"xpnet: wrote {args.plot}")
    return 0

