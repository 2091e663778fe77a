"""The engine: training, evaluation, prediction, refinement and run directories.

Submodules are imported explicitly (``from fwi_plugins.engine import metrics``); this
package imports nothing heavy so that importing one part does not pull in the rest.
"""
