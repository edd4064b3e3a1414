"""How a model trains: :class:`TrainConfig` (:mod:`.config`), the loop (:mod:`.loop`), optimizers
and schedules, stopping rules and signals."""
