"""How many jobs SLURM lets this user queue, where its accounting says so.

A cluster caps the jobs a user may have queued and running together: the QOS's
`MaxSubmitJobsPerUser`, the association's `MaxSubmitJobs`. sbatch refuses the job past the cap.
The executor reads the caps once, here, and keeps at most that many of the workflow's jobs in
SLURM; the other runs wait in the executor and go as jobs end. Where accounting does not answer
(no sacctmgr, no slurmdbd) there are no caps to read: Snakemake's `--jobs` (the profile's `jobs`)
bounds the runs in flight, and a refusal for a limit is still retried (`imgzoo.slurm_answers`).

Read: the user's associations on this cluster (account, partition, MaxSubmitJobs, default QOS),
the user's default account, and every QOS's MaxSubmitJobsPerUser: three sacctmgr calls and one
scontrol, once per workflow. A MaxSubmitJobs the user's association inherits from a parent
account is among them (slurmdbd records it on every association below that sets none). Group
limits (GrpSubmitJobs, shared with other users) and per-account QOS limits are not read: sbatch's
refusal is retried where they bite.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field

from imgzoo.slurm_commands import rows

DEFAULT_QOS = "normal"  # what SLURM gives a job whose association names no default QOS


@dataclass(frozen=True)
class Association:
    max_submit_jobs: int | None
    default_qos: str


@dataclass(frozen=True)
class SubmitLimits:
    """The submit caps accounting sets on one user."""

    default_account: str = ""
    # (account, partition) -> the association; partition "" for an association of all of them
    associations: dict[tuple[str, str], Association] = field(default_factory=dict)
    qos_limits: dict[str, int] = field(default_factory=dict)  # QOS -> MaxSubmitJobsPerUser

    def of(self, resources: dict) -> dict[str, int]:
        """The caps a job of these resources counts against: {what the cap is: most jobs}, e.g.
        {"MaxSubmitJobsPerUser of QOS normal": 2}; {} where none is set."""
        account = resources.get("account") or self.default_account
        partition = resources.get("partition") or ""
        association = self.associations.get((account, partition)) or self.associations.get(
            (account, "")
        )
        caps = {}
        if association is not None and association.max_submit_jobs is not None:
            caps[f"MaxSubmitJobs of association {account}"] = association.max_submit_jobs
        qos = resources.get("qos") or (association.default_qos if association else DEFAULT_QOS)
        if qos in self.qos_limits:
            caps[f"MaxSubmitJobsPerUser of QOS {qos}"] = self.qos_limits[qos]
        return caps


NO_LIMITS = SubmitLimits()


def _number(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def cluster_name() -> str | None:
    """This cluster's name (`scontrol show config`), None where scontrol does not answer."""
    for fields in rows(["scontrol", "show", "config"]) or []:
        key, _, value = fields[0].partition("=")
        if key.strip() == "ClusterName":
            return value.strip()
    return None


def read_limits(user: str | None = None) -> SubmitLimits | None:
    """The user's submit caps on this cluster; None where accounting does not answer."""
    user = user or getpass.getuser()
    cluster = cluster_name()
    where = ["where", f"user={user}"] + ([f"cluster={cluster}"] if cluster else [])
    sacctmgr = ["sacctmgr", "-n", "-P", "show"]
    assocs = rows(
        sacctmgr + ["assoc", *where, "format=Account,Partition,MaxSubmitJobs,DefaultQOS,QOS"]
    )
    users = rows(sacctmgr + ["user", user, "format=DefaultAccount"])
    qos = rows(sacctmgr + ["qos", "format=Name,MaxSubmitJobsPerUser"])
    if assocs is None or qos is None:
        return None
    associations = {}
    for account, partition, max_submit, default_qos, allowed, *_ in assocs:
        # no default QOS: the one the association allows, where it allows one, else SLURM's
        allowed_qos = [q for q in allowed.split(",") if q]
        default_qos = default_qos or (allowed_qos[0] if len(allowed_qos) == 1 else DEFAULT_QOS)
        associations[(account, partition)] = Association(_number(max_submit), default_qos)
    default_account = users[0][0] if users else ""
    if not default_account and len({account for account, _ in associations}) == 1:
        default_account = next(iter(associations))[0]
    return SubmitLimits(
        default_account=default_account,
        associations=associations,
        qos_limits={name: n for name, limit, *_ in qos if (n := _number(limit)) is not None},
    )
