"""A process killed (SIGKILL) between creating a payment at Mollie and storing Mollie's id
leaves a `created` row; the reconcile job then finds that very payment with the row's
idempotency key, and Mollie never holds a second one."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap

import aiohttp
import pytest
from sqlalchemy import select

from dossier.calls import admit, knock
from dossier.models import Payment
from dossier.payments import MollieProvider, PaymentStatus, reconcile_payments, registry
from retention.audit import verify_chain

from fake_mollie import API_KEY, FakeMollie
from support import CLERK, RESIDENT, engine_of

# "returned": Mollie's answer arrived; the process dies before it stores anything of it.
# "in_flight": Mollie made the payment but the process dies before the answer arrives (the
# fake holds it back until the test has killed the child).
CHILD = textwrap.dedent(
    """
    import asyncio, datetime as dt, os, signal, sys, uuid
    import aiohttp
    from dossier.db import ManualClock
    from dossier.payments import MollieProvider, request_payment
    from retention.audit import Actor
    from server.resources import make_store, open_engine
    from server.settings import Settings

    PHASE, DOSSIER, BASE_URL, API_KEY, NOW = sys.argv[1:6]

    class DiesAfterCreate:
        def __init__(self, real):
            self.real, self.id = real, real.id

        async def create_payment(self, **request):
            payment = await self.real.create_payment(**request)
            print("CREATED", payment.id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    async def main():
        settings = Settings()
        clock = ManualClock(dt.datetime.fromisoformat(NOW))
        store = make_store(settings, open_engine(settings), clock)
        async with aiohttp.ClientSession() as http:
            provider = MollieProvider(http, api_key=API_KEY, base_url=BASE_URL, timeout=120)
            if PHASE == "returned":
                provider = DiesAfterCreate(provider)
            await request_payment(
                store, actor=Actor("clerk", "emp-1001"), dossier_id=uuid.UUID(DOSSIER),
                amount_cents=1234, description="Leges geboorteaangifte", provider=provider,
                redirect_url="https://balie.example/terug",
                webhook_url="https://balie.example/betalingen/webhook/mollie",
            )
        print("NOT KILLED", flush=True)

    asyncio.run(main())
    """
)


def child_env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALIE_")}
    env.update(
        BALIE_ENVIRONMENT="test",
        BALIE_DATA_DIR=str(settings.data_dir),
        BALIE_DATABASE_URL=settings.resolved_database_url,
    )
    return env


@pytest.mark.parametrize("phase", ["returned", "in_flight"])
async def test_sigkill_between_create_and_store_makes_no_second_payment(
    settings, store, booked, clock, phase
):
    dossier_id = booked.dossier.id
    await knock(store, actor=RESIDENT, dossier_id=dossier_id)
    await admit(store, actor=CLERK, dossier_id=dossier_id)
    async with FakeMollie() as mollie, aiohttp.ClientSession() as http:
        if phase == "in_flight":
            mollie.hang_next(1)
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, phase, str(dossier_id), mollie.base_url, API_KEY,
             clock.current.isoformat()],
            env=child_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            # The fake runs on this event loop, so wait for the child in a thread.
            exited = asyncio.ensure_future(asyncio.to_thread(child.wait, 120))
            created = asyncio.ensure_future(mollie.payment_created.wait())
            await asyncio.wait({exited, created}, timeout=120, return_when="FIRST_COMPLETED")
            assert created.done(), child.stderr.read() if exited.done() else "child hangs"
            if phase == "in_flight":
                assert not exited.done()
                child.send_signal(signal.SIGKILL)
            assert await exited == -signal.SIGKILL
            output = child.stdout.read()
            assert ("CREATED" in output) == (phase == "returned")
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            created.cancel()
            child.stdout.close()
            child.stderr.close()

        # The crash left its trace: a committed row without Mollie's id, one payment at Mollie.
        async with store.sessions() as session:
            row = (await session.execute(select(Payment))).scalar_one()
        assert (row.status, row.provider_payment_id) == ("created", None)
        assert mollie.created == 1
        [mollie_id] = mollie.payment_ids()

        mollie.release()
        provider = MollieProvider(http, api_key=API_KEY, base_url=mollie.base_url, timeout=5)
        clock.advance(dt.timedelta(minutes=3))
        [update] = await reconcile_payments(store, providers=registry(provider))

        assert update.payment.provider_reference == mollie_id
        assert update.payment.status is PaymentStatus.OPEN
        assert update.payment.checkout_url == f"{mollie.origin}/checkout/{mollie_id}"
        assert (mollie.created, mollie.replays) == (1, 1)
        posted_keys = {key for method, _, key in mollie.requests if method == "POST"}
        assert posted_keys == {row.idempotency_key}
        # A second run finds nothing more to create.
        await reconcile_payments(store, providers=registry(provider))
        assert mollie.created == 1
    assert (await verify_chain(engine_of(store))).ok
