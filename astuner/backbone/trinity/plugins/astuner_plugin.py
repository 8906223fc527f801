"""Trinity-RFT plugin: registers astuner's workflow (``astuner_workflow``) and task reader (``astuner``).

Trinity imports every ``*.py`` of the directories in ``TRINITY_PLUGIN_DIRS`` in each of its
processes (explorer, trainer, experience pipeline); astuner's launch puts this directory there. The
classes live in the ``astuner`` package, so Ray can also ship them to processes that never load the
plugin, and a Trinity config may name them by dotted path instead:
``astuner.backbone.trinity.workflow.AstunerWorkflow`` and
``astuner.backbone.trinity.reader.AstunerTaskReader``. In a colocated run it also replaces Trinity
0.6.0's engine allocation, which would otherwise hang on one GPU (``colocate.py``), and without
``flash_attn`` it gives verl PyTorch unpadding helpers (``unpad.py``).
"""

from astuner.backbone.trinity.colocate import patch_allocator
from astuner.backbone.trinity.plugin import register
from astuner.backbone.trinity.unpad import patch_unpadding

register()
patch_allocator()  # colocate runs on trinity-rft 0.6.0 only (astuner/backbone/trinity/colocate.py)
patch_unpadding()  # verl takes its unpadding helpers from flash_attn, absent on our GPU image (unpad.py)
