"""Train a model of the keras_ae zoo: ``python train.py --help``."""

import sys

from keras_ae.train import main

if __name__ == "__main__":
    sys.exit(main())
