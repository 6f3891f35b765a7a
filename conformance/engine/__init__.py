"""The concurrency engine, pure: schedules and traces as data, the model of what each step must do (vocabulary,
semantics, parameters), scenario families, hypothesis strategies, planning, exploration and the judge. It never
imports pkcs11: the module is reached only through a Runner (the executor)."""
