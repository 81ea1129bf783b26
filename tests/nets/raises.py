"""A user's network with a bug, for the tests of a run that fails in its job: a study's checks
only read this file (it defines build(), which takes the dataset's shape); the job runs it."""


def build(num_classes, image_size, in_chans):
    raise ValueError("the network has a bug")
