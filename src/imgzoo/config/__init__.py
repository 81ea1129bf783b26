"""A study's config: loaded from its files (`files`), resolved into experiments (`resolve`) and
asked about its runs (`study`); a run's settings changed by hand (`overrides`). One place decides
what a study's runs are: the Snakefile, the command line and the launchers all go through here.
Imports no torch: the Snakefile and a login node load this."""

from imgzoo.config.files import DEFAULT_CONFIG, load_study, load_yaml, merge
from imgzoo.config.overrides import apply_overrides
from imgzoo.config.study import Run, Study

__all__ = ["DEFAULT_CONFIG", "Run", "Study", "apply_overrides", "load_study", "load_yaml", "merge"]
