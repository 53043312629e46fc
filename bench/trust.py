"""Issue 6's figures: the price of tamper evidence, encryption and signatures, and the
speed of verification, checkpoints (with the map of stream heads) and proofs of
completeness on a store of a million events."""

from __future__ import annotations

import base64
import json
import random
import statistics
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import Figure, Report, percentile
from bench.write_side import fresh, timed_publish, write_traffic
from orderlog.audit.checkpoints import extend_tree, issue_checkpoint, stored_checkpoints
from orderlog.audit.proofs import order_proof
from orderlog.audit.verification import verify_store
from orderlog.audit_verify import envelope_payload, load_public_key, verify_proof, verify_signature
from orderlog.bootstrap import open_orderlog
from orderlog.config import Config
from orderlog.domain.stream import HashChainSealer, StreamAggregate, UnsealedRecords
from orderlog.intake.parallel import publish_file_in_parallel
from orderlog.intake.pipeline import Intake
from orderlog.intake.reading import input_lines
from orderlog.privacy.vault import PlaintextVault
from orderlog.simulate import SOURCES, simulate
from orderlog.sources.gate import SourceGate
from orderlog.sources.registry import SourceRequest, register_source
from orderlog.sources.signing import public_pem, read_public_key
from orderlog.sources.simulated import sign_simulated

ORDERS = 20_000
SIGNED_ORDERS = 6_000
GROWTH_ORDERS = 2_300  # about 10,000 events


def publish_file(config: Config, traffic: Path, *, protected: bool) -> float:
    """One process, stored events/s; `protected` False: no hash chain, no encryption."""
    StreamAggregate.sealer = HashChainSealer() if protected else UnsealedRecords()
    try:
        app = open_orderlog(config, create=True)
        publisher = app.intake()
        if not protected:
            gate = SourceGate(app, require_signatures=False)
            publisher = Intake(app, PlaintextVault(app.database, None), gate)
        started = time.perf_counter()
        with traffic.open("rb") as file:
            for _ in publisher.take((n, line) for n, line, _ in input_lines(file)):
                pass
        elapsed = time.perf_counter() - started
        stored = sum(app.database.count_by_topic().values())
        app.close()
        return stored / elapsed
    finally:
        StreamAggregate.sealer = HashChainSealer()


def integrity_price(report: Report, work: Path, runs: int) -> None:
    traffic = work / "traffic.jsonl"
    write_traffic(traffic, ORDERS, seed=42)
    on, off = [], []
    for _ in range(runs):  # alternate, so that machine noise falls on both sides
        off.append(publish_file(fresh(work / "off"), traffic, protected=False))
        on.append(publish_file(fresh(work / "on"), traffic, protected=True))
    report.add(
        Figure(
            "publish with hash chain and per-customer encryption",
            statistics.median(on),
            "stored events/s",
            f"{ORDERS:,} simulated orders from a file, one process, SQLite; the same run without them "
            f"(no canonical JSON, no SHA-256, addresses in clear): {statistics.median(off):,.0f} events/s",
            goal="ratio >= 0.85",
            beside="the same without",
            ratio=statistics.median(on) / statistics.median(off),
            runs=on,
        )
    )


def signature_price(report: Report, work: Path, runs: int) -> None:
    keys = work / "source-keys"
    signed = list(sign_simulated(write_lines(SIGNED_ORDERS), keys, announce=lambda _m: None))
    traffic = work / "signed.jsonl"
    traffic.write_text("\n".join(signed) + "\n", encoding="utf-8")
    bare = bare_verification_rate(signed)
    for workers in (1, 2):
        rates = []
        for _ in range(runs):
            config = fresh(work / f"signed-{workers}")
            app = open_orderlog(config, create=True)
            for name, types in SOURCES.items():
                register_source(app, SourceRequest(name, types, read_public_key(keys / f"{name}.pub.pem")), "bench")
            app.close()
            required = Config(
                store_url=config.store_url, master_key_file=config.master_key_file, require_signatures=True
            )
            rates.append(signed_lines_per_second(required, traffic, workers))
        rate = statistics.median(rates)
        report.add(
            Figure(
                f"publish with signatures required, {workers} process{'es' if workers > 1 else ''}",
                rate,
                "lines/s",
                f"{len(signed):,} signed simulated lines (Ed25519 per line, RFC 8785 envelope), SQLite; bare Ed25519 "
                f"verification in this run: {bare:,.0f}/s in one process",
                goal="ratio >= 0.6 (one process)",
                beside="bare Ed25519 verification",
                ratio=rate / bare,
                runs=rates,
            )
        )


def write_lines(orders: int) -> list[str]:
    return list(simulate(orders, seed=77))


def bare_verification_rate(signed: list[str]) -> float:
    """Ed25519 verifications per second of the same envelopes, with keys already loaded."""
    key = Ed25519PrivateKey.generate()
    public = load_public_key(public_pem(key))
    samples = []
    for line in signed[:12_000]:
        try:
            envelope = json.loads(line)
            message = envelope_payload(envelope)
        except (ValueError, TypeError, AttributeError):
            continue  # the simulator's deliberately malformed lines
        samples.append((base64.b64encode(key.sign(message)).decode(), message))
    started = time.perf_counter()
    for signature, message in samples:
        verify_signature(public, signature, message)
    return len(samples) / (time.perf_counter() - started)


def signed_lines_per_second(config: Config, traffic: Path, workers: int) -> float:
    lines, elapsed, _stored = timed_publish(config, traffic, workers)
    return lines / elapsed


def big_store_audit(report: Report, config: Config, order_ids: list[str], work: Path, runs: int) -> None:
    key = Ed25519PrivateKey.generate()
    log_key = public_pem(key).decode()
    app = open_orderlog(config)
    started = time.perf_counter()
    extend_tree(app)
    tree_seconds = time.perf_counter() - started
    issue_checkpoint(app, key)  # the map of stream heads, built from scratch over the whole log
    first = time.perf_counter() - started
    stored = sum(app.database.count_by_topic().values())
    speeds = []
    for _ in range(runs):
        started = time.perf_counter()
        kept = [(f"kept #{c['tree_size']}", c) for c in stored_checkpoints(app)]
        result = verify_store(app, kept, log_key)  # as `orderlog audit verify` does
        speeds.append(result.events / (time.perf_counter() - started))
        assert result.ok, result.headline()
    report.add(
        Figure(
            "audit verify",
            statistics.median(speeds),
            "events/s",
            f"every chain, the whole Merkle tree and the map of stream heads recomputed and compared with the "
            f"persisted ones, the kept checkpoint's signature, root and map root checked; {stored:,} events "
            "(SQLite), one process",
            goal=">= 60,000 events/s",
            runs=speeds,
        )
    )

    growth = work / "growth.jsonl"
    write_traffic(growth, GROWTH_ORDERS, seed=999)
    for _ in publish_file_in_parallel(config, growth, 2):
        pass
    grown = sum(app.database.count_by_topic().values()) - stored
    started = time.perf_counter()
    checkpoint = issue_checkpoint(app, key)
    report.add(
        Figure(
            "audit checkpoint after growth",
            time.perf_counter() - started,
            "s",
            f"log of {checkpoint['tree_size']:,} events grown by {grown:,} since the last checkpoint: tree extended, "
            f"map of stream heads updated for the streams touched, signed (the first checkpoint over all {stored:,}, "
            f"building the tree and the map from scratch, took {first:.1f} s: tree {tree_seconds:.1f} s, "
            f"map {first - tree_seconds:.1f} s)",
            goal="<= 1 s",
        )
    )

    rng = random.Random(11)
    timings = []
    for order_id in rng.sample(order_ids, 200):
        started = time.perf_counter()
        proof = order_proof(app, order_id, checkpoint, log_key)
        timings.append((time.perf_counter() - started) * 1000)
    problems, _notes = verify_proof(proof, checkpoint)
    assert not problems and "map" in proof, problems  # the last one proves completeness, as they all do
    report.add(
        Figure(
            "audit proof for one order, p99",
            percentile(timings, 0.99),
            "ms",
            f"200 random orders, log of {checkpoint['tree_size']:,} events (SQLite): records, inclusion paths and "
            f"the map proof of completeness; p50 {percentile(timings, 0.5):.1f} ms",
            goal="<= 50 ms",
        )
    )
    app.close()


def run(report: Report, work: Path, runs: int, big: tuple[Config, list[str]]) -> None:
    integrity_price(report, work, runs)
    signature_price(report, work, runs)
    big_store_audit(report, big[0], big[1], work, min(runs, 2))
