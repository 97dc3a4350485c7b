"""Every registered model family, one file each. A new family is a new file here, imported below; the
import order is the order families are listed in (--help, errors)."""
# isort: skip_file

from videotune.core.models.families import smolvlm2  # noqa: F401 - importing a family registers it
from videotune.core.models.families import qwen2_vl  # noqa: F401
from videotune.core.models.families import qwen2_5_vl  # noqa: F401
from videotune.core.models.families import qwen3_vl  # noqa: F401
from videotune.core.models.families import llava_onevision  # noqa: F401
from videotune.core.models.families import videollama3  # noqa: F401
from videotune.core.models.families import nvila  # noqa: F401
from videotune.core.models.families import llava_video  # noqa: F401
from videotune.core.models.families import mobile_videogpt  # noqa: F401
