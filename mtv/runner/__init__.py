"""Running experiments: the train / eval / profile tasks behind run.py, their processes and run directories.

`run.py` composes the Hydra config and calls `mtv.runner.jobs.hydra_job`; everything below works from a
plain, fully resolved config, so DDP worker processes can run the same code without Hydra. Importing the
package registers the config schemas (mtv.runner.schema) and resolvers that conf/ uses.
"""

from mtv.runner.resolvers import register as _register_resolvers
from mtv.runner.schema import register_schemas as _register_schemas

_register_resolvers()
_register_schemas()
