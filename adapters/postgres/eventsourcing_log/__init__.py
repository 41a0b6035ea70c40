"""fancrm's log as an eventsourcing persistence module, for analysts' projections.

    PERSISTENCE_MODULE=adapters.postgres.eventsourcing_log   # or use FancrmLog, which sets it

eventsourcing finds ``Factory`` here (its only InfrastructureFactory). It reads, with the
application's name as an optional prefix (``FANCRMLOG_DATABASE_URL``) as eventsourcing does:

* ``DATABASE_URL``: fancrm's database (required);
* ``CRM_MASTER_KEY`` (and ``CRM_PREVIOUS_MASTER_KEYS``): personal fields are revealed only with
  it; without it they read as None. An erased fan's never come back (its key is destroyed);
* ``FANCRM_TENANT``: only that creator account's events (ids stay the log's: they grow, with
  gaps where other tenants' events are);
* ``TRACKING_PERSISTENCE_MODULE``: where a projection's view and tracking live when this
  module is also the projection's: ``eventsourcing.sqlite`` (the default when
  ``SQLITE_DBNAME`` is set) or ``eventsourcing.popo`` (in memory, the default otherwise).

``FancrmLog`` is the application to give a ``ProjectionRunner``: its own prefixed setting points
it here, so a plain ``PERSISTENCE_MODULE`` (``eventsourcing.sqlite``...) configures the view.
"""

from __future__ import annotations

from typing import Any, ClassVar

from eventsourcing.application import Application
from eventsourcing.persistence import (
    AggregateRecorder,
    InfrastructureFactory,
    InfrastructureFactoryError,
    Mapper,
    NotSupportedError,
    ProcessRecorder,
    TrackingRecorder,
    Transcoder,
)
from eventsourcing.utils import Environment, EnvType

from adapters.crypto import MasterKey
from adapters.postgres.eventsourcing_log.loop import LoopThread
from adapters.postgres.eventsourcing_log.mapper import REFUSED, LogMapper
from adapters.postgres.eventsourcing_log.recorder import LogRecorder
from adapters.postgres.personal_data import PersonalDataCodec
from adapters.postgres.pool import create_pool
from adapters.postgres.subject_keys import SubjectKeys

__all__ = ["Factory", "FancrmLog"]


class Factory(InfrastructureFactory[TrackingRecorder]):
    DATABASE_URL = "DATABASE_URL"
    MASTER_KEY = "CRM_MASTER_KEY"
    PREVIOUS_MASTER_KEYS = "CRM_PREVIOUS_MASTER_KEYS"
    TENANT = "FANCRM_TENANT"
    TRACKING_PERSISTENCE_MODULE = "TRACKING_PERSISTENCE_MODULE"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self._loop: LoopThread | None = None
        self._recorder: LogRecorder | None = None
        self._tracking: InfrastructureFactory[Any] | None = None

    def mapper(
        self,
        transcoder: Transcoder | None = None,
        mapper_class: type[Mapper[Any]] | None = None,
    ) -> Mapper[Any]:
        # The recorder decodes with the store's own mapper: eventsourcing's has nothing to do.
        return LogMapper(transcoder=transcoder or self.transcoder())

    def application_recorder(self) -> LogRecorder:
        if self._recorder is None:
            self._recorder = self._open()
        return self._recorder

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        if purpose != "events":
            raise NotSupportedError(f"fancrm's log keeps no {purpose}: {REFUSED}")
        return self.application_recorder()

    def process_recorder(self) -> ProcessRecorder:
        raise NotSupportedError(REFUSED)

    def tracking_recorder(
        self, tracking_recorder_class: type[TrackingRecorder] | None = None
    ) -> TrackingRecorder:
        if self._tracking is None:
            module = self.env.get(self.TRACKING_PERSISTENCE_MODULE) or (
                "eventsourcing.sqlite" if self.env.get("SQLITE_DBNAME") else "eventsourcing.popo"
            )
            if module == __name__:
                raise NotSupportedError("fancrm's log cannot hold a projection's tracking")
            env = dict(self.env, PERSISTENCE_MODULE=module)
            if self.env.name:
                env[f"{self.env.name.upper()}_PERSISTENCE_MODULE"] = module
            self._tracking = InfrastructureFactory.construct(Environment(self.env.name, env))
        recorder: TrackingRecorder = self._tracking.tracking_recorder(tracking_recorder_class)
        return recorder

    def _open(self) -> LogRecorder:
        url = self.env.get(self.DATABASE_URL)
        if not url:
            keys = ", ".join(self.env.create_keys(self.DATABASE_URL))
            raise InfrastructureFactoryError(f"fancrm's database: set {keys}")
        tenant = self.env.get(self.TENANT)
        if tenant is not None and not tenant.strip():
            # Set but empty would read as "no filter": refuse rather than show every tenant.
            raise InfrastructureFactoryError(f"{self.TENANT} is set but empty")
        master = self.env.get(self.MASTER_KEY)
        previous = (self.env.get(self.PREVIOUS_MASTER_KEYS) or "").split(",")
        self._loop = loop = LoopThread()
        try:
            pool = loop.run(create_pool(url, min_size=1, max_size=4))
        except BaseException:
            loop.close()
            raise
        personal = None
        try:
            if master:
                keys = SubjectKeys(
                    pool,
                    MasterKey.parse(master),
                    [MasterKey.parse(key) for key in previous if key.strip()],
                )
                loop.run(keys.verify_master_key())  # a wrong key is refused before any read
                personal = PersonalDataCodec(keys)
        except BaseException:
            loop.run(pool.close())
            loop.close()
            raise
        return LogRecorder(loop, pool, personal, tenant or None)

    def close(self) -> None:
        """Idempotent: an application closes its factory, and again when it is collected."""
        tracking, self._tracking = self._tracking, None
        if tracking is not None:
            tracking.close()
        loop, recorder, self._loop, self._recorder = self._loop, self._recorder, None, None
        if loop is not None:
            if recorder is not None:
                loop.run(recorder.close())
            loop.close()


class FancrmLog(Application[str]):
    """fancrm's log, read-only, as the application a ProjectionRunner follows."""

    name = "FancrmLog"
    env: ClassVar[dict[str, str]] = {"FANCRMLOG_PERSISTENCE_MODULE": __name__}
