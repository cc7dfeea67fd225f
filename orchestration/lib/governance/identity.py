"""Who is acting, and which roles they hold — decided by the operating system and an administrator's file,
never by anything the caller can set.

**Who.** :func:`current_user` is the account of the process's *real* uid (``pwd.getpwuid(os.getuid())``).
``$USER``, ``$LOGNAME`` and ``$PLACELINK_USER`` are ignored for identity: anyone can set them (that was the
bug: ``PLACELINK_USER=dpo.officer placelink query --role engineer`` read names and NHS numbers).
``PLACELINK_USER`` survives only as a *display hint*: when set, the audit event records it beside the real
account as ``details.claimed_user`` (so a spoofing attempt is itself on the record).

**The web tier.** A person who launches a Dagster run in the UI does not own the run's process (the service
account does). The only identity Dagster carries for them is the run's ``user`` / ``dagster/user`` tag. Dagster+
sets it from the login; the open-source webserver lets anyone who reaches the launchpad type any tag. So the
tag is trusted only when the administrator's role file says this deployment's web tier sets it
(``web_identity: {run_tag: user}``) *and* the profile is ``production``; the audit row's ``who`` is then the
person and ``details.os_user`` the service account. Otherwise ``who`` is the service account and the tag is
kept as ``details.claimed_user``. No environment variable carries identity in any profile.

**Roles.** :func:`roles_of` reads the role file, :attr:`Settings.roles_file`
(``<home>/governance/roles.yml`` locally, ``/etc/placelink/roles.yml`` in production)::

    engineer: {users: [placelink], groups: [placelink-engineers]}   # identifiable zone + warehouse
    analyst:  {users: [jo], groups: [placelink-analysts]}           # place-level marts (projects for more)
    public:   {users: ["*"]}                                        # published files
    approver: {groups: [output-checkers]}                           # may approve an export (four eyes)
    web_identity: {run_tag: user}                                   # optional, production only

``engineer`` includes ``analyst``, which includes ``public``; ``approver`` is a capability of its own. The
file must be owned by root or by the account that owns the home (the service account) and must not be
writable by its group or others, nor may its folder be; otherwise every check refuses with a message naming
the file and the ``chown``/``chmod`` that fixes it. Production refuses to run without it.

**Local/demo mode without a role file**: the account that owns the home is its administrator and holds every
role and ``approver`` (so ``make demo`` and the tests, which run as the home's owner, work unchanged); any
other account holds ``public`` only.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestration.lib.config import Settings
from orchestration.lib.errors import PlacelinkError

#: Roles from most to least access; a role includes every role after it.
ROLE_ORDER: tuple[str, ...] = ("engineer", "analyst", "public")
CAPABILITIES: tuple[str, ...] = (*ROLE_ORDER, "approver")
#: The display-only hint a launcher may set; never used to decide who acts or what they may do.
DISPLAY_HINT_ENV = "PLACELINK_USER"
#: Run tags under which Dagster records the person who launched a run (Dagster+ sets ``user``).
RUN_USER_TAGS = ("dagster/user", "user")


# --- who -------------------------------------------------------------------------------------------

def _account(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a container uid without a passwd entry: still a real, unspoofable identity
        return f"uid:{uid}"


def os_user() -> str:
    """The account of the real uid of this process (not ``$USER``/``$LOGNAME``, which anyone can set)."""
    return _account(os.getuid())


def current_user() -> str:
    """Who is acting: the operating-system account of this process (see the module docstring)."""
    return os_user()


def claimed_user() -> str | None:
    """``PLACELINK_USER`` when set and different from the real account: recorded, never trusted."""
    hint = (os.environ.get(DISPLAY_HINT_ENV) or "").strip()
    return hint if hint and hint != os_user() else None


def _groups_of(user: str) -> set[str]:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return set()
    names = set()
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.add(f"gid:{gid}")
    return names


# --- the role file -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grant:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def covers(self, user: str, groups: set[str]) -> bool:
        return "*" in self.users or user in self.users or bool(self.groups & groups)


@dataclass(frozen=True)
class RoleFile:
    """Who holds what. ``source`` says where it came from (the file, or the local default)."""

    source: str
    grants: Mapping[str, Grant] = field(default_factory=dict)
    web_run_tag: str | None = None

    def holds(self, user: str, capability: str) -> bool:
        groups = _groups_of(user)
        if capability in ROLE_ORDER:  # engineer includes analyst includes public
            wider = ROLE_ORDER[: ROLE_ORDER.index(capability) + 1]
            return any(self.grants.get(r, Grant()).covers(user, groups) for r in wider)
        return self.grants.get(capability, Grant()).covers(user, groups)


def home_owner(settings: Settings) -> str:
    """The account that owns the home folder: its administrator in local mode."""
    return _account(settings.home.stat().st_uid)


def _admin_uids(settings: Settings) -> set[int]:
    uids = {0}
    if settings.home.exists():
        uids.add(settings.home.stat().st_uid)
    return uids


def check_admin_only(path: Path, settings: Settings, what: str = "the role file") -> None:
    """Refuse ``path`` unless root or the home's owner owns it and neither it nor its folder is writable by
    group or others (otherwise someone else could give themselves a role)."""
    admins = _admin_uids(settings)
    names = ", ".join(sorted(_account(u) for u in admins))
    for p, kind in ((path, "file"), (path.parent, "folder")):
        st = p.stat()
        if st.st_uid not in admins:
            raise PlacelinkError(
                f"{what} is not trusted: its {kind} is owned by {_account(st.st_uid)}, not an administrator "
                f"({names})", where=str(p), fix=f"sudo chown root {p}  (only an administrator may grant roles)")
        if stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH) and not (
                kind == "folder" and st.st_mode & stat.S_ISVTX and st.st_uid == 0):
            raise PlacelinkError(
                f"{what} is not trusted: its {kind} is writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o})", where=str(p), fix=f"chmod go-w {p}")


def _grant(value: Any, where: str, key: str) -> Grant:
    if value is None:
        return Grant()
    if not isinstance(value, dict) or set(value) - {"users", "groups"}:
        raise PlacelinkError(f"role file entry {key!r} must be a mapping with 'users' and/or 'groups' lists",
                             where=where, fix=f"{key}: {{users: [name], groups: [group]}}")
    return Grant(frozenset(str(u) for u in value.get("users") or ()),
                 frozenset(str(g) for g in value.get("groups") or ()))


def load_role_file(settings: Settings) -> RoleFile:
    """The role file after the ownership check; the local default when there is none (see module docs)."""
    path = settings.roles_file
    try:
        present = path.exists()
    except PermissionError as exc:  # the governance folder is owner-only: this account is not in the service
        raise PlacelinkError(f"{os_user()} may not read the role file, so holds no role here", where=str(path),
                             fix="ask an administrator for a role (they make the file readable to you)") from exc
    if not present:
        if settings.env == "production":
            raise PlacelinkError(
                "production needs a role file naming who holds each role", where=str(path),
                fix=f"as root, create {path} (engineer/analyst/public/approver -> users, groups) with mode 0644")
        if not settings.home.exists():
            return RoleFile(source="local default (no home yet)")
        owner = home_owner(settings)
        return RoleFile(source=f"local default: {owner} owns {settings.home}",
                        grants={"engineer": Grant(frozenset({owner})), "approver": Grant(frozenset({owner})),
                                "public": Grant(frozenset({"*"}))})
    try:
        check_admin_only(path, settings)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except PermissionError as exc:
        raise PlacelinkError(f"cannot read the role file as {os_user()}", where=str(path),
                             fix="ask an administrator for a role (the file must be readable by you)") from exc
    except yaml.YAMLError as exc:
        raise PlacelinkError("the role file is not valid YAML", where=str(path),
                             fix="correct it (see orchestration/lib/governance/identity.py)") from exc
    if not isinstance(data, dict) or set(data) - {*CAPABILITIES, "web_identity"}:
        unknown = sorted(set(data) - {*CAPABILITIES, "web_identity"}) if isinstance(data, dict) else data
        raise PlacelinkError(f"the role file has unknown entries {unknown}", where=str(path),
                             fix=f"use only {', '.join(CAPABILITIES)} and web_identity")
    web = data.get("web_identity") or {}
    return RoleFile(source=str(path), grants={c: _grant(data.get(c), str(path), c) for c in CAPABILITIES},
                    web_run_tag=web.get("run_tag") if isinstance(web, dict) else None)


def holds(settings: Settings, capability: str, user: str | None = None) -> bool:
    """Whether ``user`` (default: the acting OS account) holds ``capability`` (a role or ``approver``)."""
    if capability not in CAPABILITIES:
        raise PlacelinkError(f"unknown role or capability {capability!r}", fix=f"use one of {', '.join(CAPABILITIES)}")
    return load_role_file(settings).holds(user or current_user(), capability)


def require(settings: Settings, capability: str, user: str | None = None) -> str:
    """Return the acting user if they hold ``capability``; otherwise refuse with who, what and where to ask."""
    user = user or current_user()
    roles = load_role_file(settings)
    if not roles.holds(user, capability):
        hint = f" (PLACELINK_USER={claimed_user()} is a display hint and grants nothing)" if claimed_user() else ""
        raise PlacelinkError(
            f"{user} does not hold the {capability} role{hint}", where=roles.source,
            fix=f"an administrator grants it in {settings.roles_file}; you hold: "
                + (", ".join(roles_of(settings, user)) or "nothing"))
    return user


def roles_of(settings: Settings, user: str | None = None) -> list[str]:
    """Every role and capability ``user`` holds, widest first."""
    roles = load_role_file(settings)
    user = user or current_user()
    return [c for c in CAPABILITIES if roles.holds(user, c)]


def current_role(settings: Settings) -> str:
    """The widest role the acting account holds (recorded on audit events), or ``none``."""
    held = [r for r in roles_of(settings) if r in ROLE_ORDER]
    return held[0] if held else "none"


# --- runs launched through the web tier ----------------------------------------------------------------

def run_identity(settings: Settings, tags: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``(who, details)`` for the audit events of a Dagster run with ``tags`` (see the module docstring)."""
    me = os_user()
    if settings.env == "production":
        trusted = load_role_file(settings).web_run_tag
        if trusted and tags.get(trusted):
            return tags[trusted], {"os_user": me, "identity_from": f"run tag {trusted} (set by the web tier)"}
    launched_by = next((tags[t] for t in RUN_USER_TAGS if tags.get(t)), None)
    return me, ({"claimed_user": launched_by} if launched_by and launched_by != me else {})
