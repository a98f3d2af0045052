"""What every script in `scripts/` shares around its `main`: user errors as one line, a quiet CPU start.

    if __name__ == "__main__":
        sys.exit(cli.run(main))

A `ValueError` is a user's mistake (a missing folder, a bad flag value, an
unreadable image): like argparse with a bad flag, the script prints one line,
`error: <message>`, and exits with status 2. `--debug` (anywhere before a
`--`) or `TF_MODELS_DEBUG=1` lets the error propagate as Python raises it
(traceback, status 1, seen by a post-mortem debugger). Any other exception
is a bug and keeps its traceback. A script that uses TensorFlow lists its
devices first, through `devices.initialize` (no spurious CUDA error on a
machine without a GPU).
"""

import os
import sys

DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "TF_MODELS_DEBUG"
USAGE_ERROR_STATUS = 2


def split_debug_flag(argv):
    """(argv without `--debug`, whether it was given); arguments after `--` are left alone."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = DEBUG_FLAG in argv[:end]
    return [argument for argument in argv[:end] if argument != DEBUG_FLAG] + argv[end:], debug


def debug_requested(flag_given=False):
    return flag_given or os.environ.get(DEBUG_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def run(main, argv=None):
    """Calls `main(argv)` and returns its exit status; a `ValueError` becomes `error: ...` and status 2."""
    argv, flag_given = split_debug_flag(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(flag_given)
    if "tensorflow" in sys.modules and not {"-h", "--help"} & set(argv):
        from tf_models.core import devices  # a script that does not use TensorFlow does not import it

        devices.initialize()
    try:
        return main(argv)
    except ValueError as error:
        if debug:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return USAGE_ERROR_STATUS


def one_line(error):
    """The error's message on one line (a message may list several files, one per line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines) or type(error).__name__
