"""The parts of a training run, each usable and testable alone; `imgzoo.train.train` wires them.

- `device`: which device a run uses, its numeric settings, bf16 autocast on the GPU;
- `network`: the model from the registry on the device, and how it wants its input;
- `device_data`: the prepared dataset on the device and the seeded batches of each epoch;
- `step`: the optimizer, the learning-rate schedule, one training step, an epoch of steps;
- `graphed_step`: the step captured as one CUDA graph and replayed (`train.cuda_graphs`);
- `evaluate`: loss, accuracy and predictions on a split;
- `checkpoint`: atomic saves, the epoch checkpoint (load, validate), the weights files;
- `history`: the metrics of the epochs so far, the best-validation epoch, the run log.
"""
