"""A callback that makes each epoch last a while, so a browser test can watch a run that is still
training (the synthetic workflow's epochs otherwise end in a fraction of a second, and a run could
complete between two polls of the page)."""
import time


class SlowEpochs:
    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds

    def on_epoch_end(self, run, state):
        time.sleep(self.seconds)
