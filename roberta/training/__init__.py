"""Training runs: settings (config), where they compute (devices), what a step holds in memory
(memory), the loop, checkpoints and resume (engine), and the two kinds of run on top of it
(pretraining, finetuning). Import from the module that owns a name."""
