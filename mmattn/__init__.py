"""mmattn: efficient attention backbones for MMDetection 3.x and MMSegmentation 1.x."""
from .utils.checkpoint import install_safe_checkpoint_loader
from .version import __version__

# Every local checkpoint load that goes through MMEngine (resume, init_cfg Pretrained,
# load_from) uses torch's weights_only unpickler with an allow-list of MMEngine's own types.
install_safe_checkpoint_loader()

__all__ = ['__version__']
