"""``python -m infra.local.moto_server …``: moto's server with this project's fixes applied."""

from moto.server import main

from infra.local import moto_patches

if __name__ == "__main__":
    moto_patches.apply()
    main()
