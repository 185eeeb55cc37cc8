"""``python -m cni``: the same as the ``tulle-cni`` console script."""

from cni.main import main

main()
