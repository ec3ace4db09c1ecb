"""The trained dense model every pruning trial of a study starts from, as it travels to
a worker process (:class:`Trained`)."""

from __future__ import annotations

from ..errors import InputError
from ..prune import models
from ..prune.adapter import ModelAdapter, NumpyAdapter, as_adapter


class Trained:
    """The trained dense model every trial of a policy starts from.

    A reference model name: a fresh copy from :func:`hwprune.prune.models.trained` per
    trial (wrapped with its data and recipe). A :class:`~hwprune.prune.adapter.ModelAdapter`
    (a torch module's): its weights and masks as they are now (``adapter.state()``),
    loaded back into the same module before each trial (the module is pruned in place).
    ``memo``: the searches already run on this model (shared by the calls of one sweep)."""

    def __init__(self, model: str | ModelAdapter, seed: int = 0):
        self.seed, self.memo = seed, {}
        self._source = None             # on a worker: what to build the torch module from
        if isinstance(model, str):
            self.name, self.adapter, self.saved = model, None, None
        else:
            self.adapter = as_adapter(model)
            self.name, self.saved = self.adapter.name, self.adapter.state()

    @property
    def reference(self) -> bool:
        return self.adapter is None and self._source is None

    def fresh(self) -> ModelAdapter:
        """The trained model, ready to prune (numpy: a new copy; torch: restored in place;
        on a worker, the module built again from its specs for the thread running the
        task, so that tasks on a worker's other threads never share it)."""
        if self._source is not None:
            from ..prune.torch_model import rebuilt

            self.adapter = rebuilt(*self._source)
        if self.adapter is None:
            model, data = models.trained(self.name, self.seed)
            return NumpyAdapter(model, data, models.spec(self.name).recipe)
        self.adapter.load_state(self.saved)
        return self.adapter

    def restore(self) -> None:
        """Put a torch module back to its state when this was built."""
        if self.adapter is not None:
            self.adapter.load_state(self.saved)

    def __getstate__(self) -> dict:
        """Sent to another process (a study's Dask worker), a reference model travels
        with its trained weights and data, which the worker then uses instead of
        training the model again (:func:`hwprune.prune.models.remember`). A torch
        module travels as its weights and the specs it came from
        (:attr:`~hwprune.prune.torch_model.TorchAdapter.source`), from which the worker
        builds it again; a module handed over in memory has none and cannot travel."""
        state = dict(self.__dict__)
        state["memo"] = {}
        if self._source is not None:        # sent on again (the Dask scheduler does)
            state["adapter"] = None
        elif self.adapter is None:
            state["_trained"] = models.trained(self.name, self.seed)
        elif getattr(self.adapter, "source", None) is not None:
            state["adapter"] = None
            state["_source"] = (self.adapter.source, self.adapter.recipe)
        elif self.adapter.kind == "torch":
            raise InputError(f"the torch model {self.name} was handed over in memory and cannot be "
                             "sent to a worker process; give it as --model MODULE:FACTORY (API: "
                             "hwprune.api.user_adapter) or run the study in this process")
        return state

    def __setstate__(self, state: dict) -> None:
        """On the worker (where Dask may unpickle a task's arguments on another thread
        than the one that runs it): the module is built when the task first asks for it
        (:meth:`fresh`)."""
        trained = state.pop("_trained", None)
        self.__dict__.update(state)
        if trained is not None:
            models.remember(self.name, self.seed, *trained)
