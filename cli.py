"""Command-line conventions shared by the scripts: argparse without prefix matching (`--n` is not `--num_proc`),
`--text-a` read as `--text_a`, an unknown option answered with the close one, and every mistake one `error:` line.

    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("--top_k", type=int, default=5, help="...")
    args = parser.parse_args()
"""
import argparse
import difflib
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse.ArgumentParser with allow_abbrev=False, the description printed as written, hyphens accepted
    for underscores in option names, and errors as one line (no usage block) with exit status 2."""

    def __init__(self, **kwargs):
        super().__init__(allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        return super().parse_args(self.command_line(args), namespace)

    def parse_intermixed_args(self, args=None, namespace=None):
        """parse_args for positionals that may come before and after the options."""
        return super().parse_intermixed_args(self.command_line(args), namespace)

    def command_line(self, args=None):
        """args (default: sys.argv[1:]) as strings, spelled out (spelled_out)."""
        return self.spelled_out(sys.argv[1:] if args is None else list(map(str, args)))

    def long_options(self):
        return [option for option in self._option_string_actions if option.startswith("--")]

    def options_taking(self, *types):
        """The long options whose values have one of these types, e.g. (int, float)."""
        return [option for option in self.long_options() if self._option_string_actions[option].type in types]

    def options_with_choice(self, value):
        """The long options that have value among their choices, e.g. "mean" -> ["--pooling"]."""
        actions = self._option_string_actions
        return [option for option in self.long_options() if value in (actions[option].choices or ())]

    def option_for(self, name):
        """The option string that name (e.g. "--text-a") stands for, or None."""
        for candidate in (name, "--" + name[2:].replace("-", "_")):
            if candidate in self._option_string_actions:
                return candidate
        return None

    def takes_value(self, option):
        """Whether the option (as defined, e.g. "--top_k") takes a value: not a flag such as store_true's."""
        return self._option_string_actions[option].nargs != 0

    def close_options(self, name):
        """The options name (e.g. "--n", "--top", "--topk", "n") may have meant: the same in another case, the
        ones it begins (what argparse's prefix matching would have guessed from), or the closest typo."""
        options, name = self.long_options(), "--" + name.lstrip("-").replace("-", "_")
        return ([option for option in options if option.lower() == name.lower()]
                or [option for option in options if option.startswith(name)]
                or difflib.get_close_matches(name, options, n=1, cutoff=0.6))

    def spelled_out(self, args):
        """args with every option spelled as defined (--text-a -> --text_a); an unknown --option is an error
        that names the close one. Values are left alone, even ones that start with '-'."""
        out, value_next = [], False
        for i, word in enumerate(args):
            if value_next or not word.startswith("--"):
                out.append(word)
                value_next = False
            elif word == "--":  # the rest are values
                return out + args[i:]
            else:
                name, equals, value = word.partition("=")
                option = self.option_for(name) or self.error(self.unknown(name))
                out.append(option + equals + value)
                value_next = not equals and self.takes_value(option)
        return out

    def unknown(self, name, form="option"):
        """"unknown option --n: did you mean --N? The options are --text_a, ...", or in the `key value` form
        (form="key") "unknown key n: did you mean N? The keys are text_a, ..."."""
        cut = 2 if form == "key" else 0
        close = " or ".join(option[cut:] for option in self.close_options(name))
        known = [option[cut:] for option in self.long_options() if option != "--help"]
        return (f"unknown {form} {name}" + (f": did you mean {close}?" if close else ".")
                + f" The {form}s are {', '.join(known)}")
