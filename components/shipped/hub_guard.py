"""Hub-side guards (run inside the hub, passed as ``hub.extraConfig`` text, like live_profiles.py).

The image guard: KubeSpawner 7.0.0 validates profile options only when ``user_options`` names a profile,
yet applies the default profile's overrides (its free-form image included) when it names none, and checks a
free-form value with ``re.match`` (a trailing newline passes). ``GuardedKubeSpawner`` closes both: a request
without a profile is validated as the default profile, and after the overrides are applied the pod's image
must be one the deploy pinned or ``<registry>/<project>/<name>`` with a tag or digest, matched whole.

The native-login guard: NativeAuthenticator pre-approves any sign-up whose name is in ``admin_users`` or
``allowed_users``, so a stranger could claim the admin name. ``GuardedNativeAuthenticator`` refuses sign-ups
under admin names (admins log in with the password the deploy generated, a Pulumi secret in the hub's
environment) and never pre-approves anyone: an admin approves every other account.

The shared-password login guard: SharedPasswordAuthenticator compares the typed name with ``admin_users``
before the hub lowercases it, so "Admin" with the user password became the admin's account (its servers and
notebooks). ``GuardedSharedPasswordAuthenticator`` compares the normalized name: an admin name logs in with the
admin password only.

The GPU quota: a user's GPUs are counted from their pods (KubeSpawner's pod reflector, which lists them when the
hub starts) and from their active servers' options (a pod not made yet), per server the larger. Options alone
would forget, after a hub restart, the servers restored from state. The spawn form hides the choices past the
quota and says why; the check before a spawn stays the rule.

Login throttling: after ``LOGIN_FAILURES`` failed logins under one name, that name is refused for
``LOGIN_PAUSE_SECONDS`` whatever the password (admin logins in both modes, every login in shared-password mode;
NativeAuthenticator's own setting covers the other native accounts).

The option-type guard: JupyterHub stores a start request's ``user_options`` as sent and hands them back (after a
restart too); KubeSpawner reads a falsy ``profile`` (``[]``) as "the default profile". Every value must be a
string (what the spawn form sends), else the start is refused with a 400 that names the option.

Self-contained on purpose: the file's text is what the hub executes (standard library, KubeSpawner and,
for native login, NativeAuthenticator, all in the chart's hub image).
"""

import copy
import hmac
import html
import inspect
import os
import re
import time
from collections.abc import Mapping


def image_allowed(image, pinned, pattern):
    """True for an image the deploy pinned, or one the registry pattern matches as a whole."""
    return isinstance(image, str) and (image in pinned or re.fullmatch(pattern, image) is not None)


def user_options_problem(options):
    """Why ``options`` (a start request's user_options) are refused, or None: an object of string values."""
    if options is None:
        return None
    if not isinstance(options, Mapping):
        return f"user options must be an object of strings, not {type(options).__name__}"
    for key, value in options.items():
        if not isinstance(value, str):
            return f"user option {str(key)[:80]!r} must be a string, not {type(value).__name__}"
    return None


GPU_RESOURCE = re.compile(r"^nvidia\.com/(gpu|gpu\.shared|mig-.+)$")


def gpus_of(limits):
    """GPUs (whole, shared slots or MIG slices) a server's extra_resource_limits ask for."""
    total = 0
    for key, value in (limits or {}).items():
        if value is not None and GPU_RESOURCE.match(str(key)):
            try:
                total += int(str(value))
            except ValueError:
                total += 1
    return total


def pod_gpus(pod):
    """GPUs a pod's containers hold (their limits); none for a pod that has finished."""
    if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
        return 0
    containers = (pod.get("spec") or {}).get("containers") or []
    return sum(gpus_of((c.get("resources") or {}).get("limits")) for c in containers)


def held_gpus(pods, username, servers, this_server):
    """[(server, gpus)] a user holds besides ``this_server``, sorted: per server the larger of what its pod
    holds (pods outlive a hub restart) and what its active spawner's options ask for (``servers``:
    [(name, gpus)]; a pod not made yet)."""
    held = {}
    for pod in pods:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        if annotations.get("hub.jupyter.org/username") != username:
            continue
        name = annotations.get("hub.jupyter.org/servername", "")
        held[name] = max(held.get(name, 0), pod_gpus(pod))
    for name, gpus in servers:
        held[name] = max(held.get(name, 0), gpus)
    held.pop(this_server, None)
    return sorted(held.items())


def gpu_limit(quota, groups, is_admin):
    """A user's GPU limit (None: unlimited): admins' own setting if given, else the largest of the
    default and the user's groups' limits; 0 means unlimited."""
    if is_admin and quota.get("admin") is not None:
        limit = quota["admin"]
    else:
        limit = max([quota.get("default") or 0] + [quota.get("groups", {}).get(g, 0) for g in groups])
        if quota.get("default") == 0 or any(quota.get("groups", {}).get(g) == 0 for g in groups):
            limit = 0
    return limit if limit else None


def quota_problem(requested, others, limit):
    """A message when a spawn would take the user past their GPU limit; ``others`` is [(server, gpus)]."""
    if limit is None or requested <= 0:
        return None
    held = sum(n for _, n in others)
    if held + requested <= limit:
        return None
    names = ", ".join(name or "default" for name, n in others if n)
    return (
        f"you use {held} of your {limit} GPUs (servers: {names or 'none'}) "
        f"and this server asks for {requested}: "
        "stop one first, or pick fewer GPUs"
    )


def _choice_gpus(base, choice):
    limits = dict(base)
    limits.update(((choice.get("kubespawner_override") or {}).get("extra_resource_limits")) or {})
    return gpus_of(limits)


def _fit_profile(profile, room):
    """``profile`` with the choices that fit ``room`` GPUs (None when none does); whether any was dropped."""
    base = (profile.get("kubespawner_override") or {}).get("extra_resource_limits") or {}
    gpu_options = [
        option
        for option in (profile.get("profile_options") or {}).values()
        if any(
            "extra_resource_limits" in (c.get("kubespawner_override") or {})
            for c in option.get("choices", {}).values()
        )
    ]
    if not gpu_options:
        return (profile if gpus_of(base) <= room else None), False
    trimmed = False
    for option in gpu_options:
        choices = option["choices"]
        keep = {key: c for key, c in choices.items() if _choice_gpus(base, c) <= room}
        if not keep:
            return None, True
        if len(keep) < len(choices):
            trimmed = True
            if not any(c.get("default") for c in keep.values()):
                next(iter(keep.values()))["default"] = True
        option["choices"] = keep
    return profile, trimmed


def form_within_quota(profiles, held, limit):
    """The spawn form's profiles without the choices past a user's GPU quota (a copy), each trimmed profile
    saying why; None when nothing fits. ``held``: [(server, gpus)] the user holds now; ``limit``: None is
    no limit."""
    if limit is None:
        return profiles
    used = sum(n for _, n in held)
    room = max(0, limit - used)
    usage = f"{used} of your {limit} GPUs"
    out, hidden = [], 0
    for profile in copy.deepcopy(profiles):
        fitted, trimmed = _fit_profile(profile, room)
        if fitted is None:
            hidden += 1
            continue
        if trimmed:
            fitted["description"] = (
                f"{fitted.get('description') or ''} (You use {usage}: choices of more than {room} are hidden.)"
            )
        out.append(fitted)
    if not out:
        return None
    if hidden:
        first = out[0]
        profiles_hidden = f"{hidden} GPU profile{'s' if hidden > 1 else ''} hidden"
        note = f"{profiles_hidden}: you use {usage}; stop a server to free them."
        first["description"] = f"{first.get('description') or ''} ({note})".strip()
    if not any(p.get("default") for p in out):
        out[0]["default"] = True
    return out


def quota_full_page(held, limit):
    """What the form says when no profile fits the quota (server names escaped: they reach HTML)."""
    names = ", ".join(html.escape(name or "default") for name, n in held if n) or "none"
    used = sum(n for _, n in held)
    return (
        f"<p>You use {used} of your {limit} GPUs (servers: {names}) and every profile here needs more. "
        "Stop one of your servers first.</p>"
    )


LOGIN_FAILURES = 5
LOGIN_PAUSE_SECONDS = 60


class LoginThrottle:
    """Failed logins per name: after ``failures`` of them, the name is refused for ``pause`` seconds from the
    last one, whatever the password; a success clears the count. Bounded: the oldest names are forgotten."""

    def __init__(self, failures=LOGIN_FAILURES, pause=LOGIN_PAUSE_SECONDS, clock=time.monotonic, size=10000):
        self.failures, self.pause, self.clock, self.size = failures, pause, clock, size
        self._seen = {}  # name: (count, time of the last failure)

    def blocked(self, name):
        count, last = self._seen.get(name, (0, 0.0))
        if count < self.failures:
            return False
        if self.clock() - last >= self.pause:
            del self._seen[name]
            return False
        return True

    def failed(self, name):
        count, _ = self._seen.pop(name, (0, 0.0))
        self._seen[name] = (count + 1, self.clock())
        while len(self._seen) > self.size:
            del self._seen[next(iter(self._seen))]

    def succeeded(self, name):
        self._seen.pop(name, None)


async def maybe_awaited(value):
    """``value``, awaited when it is awaitable (JupyterHub's hooks may be either)."""
    return await value if inspect.isawaitable(value) else value


def make_guarded_spawner(base, pinned, pattern, registry_text, quota=None):
    """A KubeSpawner subclass that enforces the image rule and the per-user GPU quota on every spawn."""
    quota = quota or {}

    from traitlets import default

    class GuardedKubeSpawner(base):
        @default("options_form")
        def _guarded_options_form(self):
            return self._quota_form if self.profile_list else ""

        async def _quota_form(self, spawner):
            """KubeSpawner's form of the profiles (a callable list evaluated now) that fit the user's quota."""
            profiles = self.profile_list
            if callable(profiles):
                profiles = await maybe_awaited(profiles(spawner))
            held, limit = await self._gpu_holdings()
            fitted = form_within_quota(profiles, held, limit)
            return quota_full_page(held, limit) if fitted is None else self._render_options_form(fitted)

        async def _quota_pods(self):
            """The pods of this namespace that KubeSpawner's reflector holds (started here if need be)."""
            import asyncio

            await asyncio.wait_for(self._start_watching_pods(), timeout=30)
            return list(self.pod_reflector.pods.values())

        async def _gpu_holdings(self):
            """([(server, gpus)] the user holds besides this server, their limit); ([], None): no limit."""
            user = self.user
            groups = [
                g.name for g in getattr(user, "groups", None) or [] if isinstance(getattr(g, "name", None), str)
            ]
            limit = gpu_limit(quota, groups, getattr(user, "admin", False) is True)
            if limit is None:
                return [], None
            try:
                pods = await self._quota_pods()
            except Exception as e:  # fail closed: no count, no GPU server
                raise ValueError(
                    f"cannot read your servers' pods to check the GPU quota, try again ({e})"
                ) from None
            spawners = getattr(user, "spawners", None)
            servers = [
                (name, gpus_of(getattr(s, "extra_resource_limits", {})))
                for name, s in sorted(spawners.items() if isinstance(spawners, Mapping) else [])
                if s is not self and getattr(s, "active", False)
            ]
            return held_gpus(pods, user.name, servers, self.name), limit

        async def run_pre_spawn_hook(self):
            # after JupyterHub set user_options, before start(); an HTTPError reaches the client as sent
            problem = user_options_problem(self.user_options)
            if problem:
                from tornado.web import HTTPError

                raise HTTPError(400, problem)
            return await maybe_awaited(super().run_pre_spawn_hook())

        def _validate_user_options(self, profile_list):
            problem = user_options_problem(self.user_options)
            if problem:
                raise ValueError(problem)
            if profile_list and not (self.user_options or {}).get("profile"):
                # no profile named: the default profile's rules (its options' validation included) apply
                default = self._get_profile(None, profile_list)
                self.user_options = {**(self.user_options or {}), "profile": default["slug"]}
            return super()._validate_user_options(profile_list)

        async def load_user_options(self):
            await super().load_user_options()
            if not image_allowed(self.image, pinned, pattern):
                raise ValueError(f"image {self.image!r} is not allowed: only images from {registry_text}")
            requested = gpus_of(self.extra_resource_limits)
            if requested:
                held, limit = await self._gpu_holdings()
                problem = quota_problem(requested, held, limit)
                if problem:
                    raise ValueError(problem)

    return GuardedKubeSpawner


def make_guarded_native_authenticator(base, password_env="GPU_JUPYTERHUB_ADMIN_PASSWORD"):
    """A NativeAuthenticator subclass: admin names log in only with the deploy's password, and no sign-up
    is ever pre-approved."""

    class GuardedNativeAuthenticator(base):
        @property
        def _throttle(self):
            if "_login_throttle" not in self.__dict__:
                self.__dict__["_login_throttle"] = LoginThrottle()
            return self.__dict__["_login_throttle"]

        def _is_admin_name(self, username):
            return self.normalize_username(username or "") in set(self.admin_users)

        async def authenticate(self, handler, data):
            name = self.normalize_username((data or {}).get("username") or "")
            if self._is_admin_name(name):
                if self._throttle.blocked(name):
                    self.log.warning("refused a login under the admin name %r: too many failed logins", name)
                    return None
                expected = os.environ.get(password_env, "")
                given = (data or {}).get("password") or ""
                if expected and hmac.compare_digest(given.encode(), expected.encode()):
                    self._throttle.succeeded(name)
                    return {"name": name, "admin": True}
                self._throttle.failed(name)
                return None
            return await super().authenticate(handler, data)

        def get_authed_users(self):
            # upstream adds allowed_users and admin_users here, which pre-approves a sign-up under those names
            return {info.username for info in self._all_user_infos() if info.is_authorized}

        def _all_user_infos(self):
            from nativeauthenticator.orm import UserInfo

            return UserInfo.all_users(self.db)

        def create_user(self, username, password, **kwargs):
            if self._is_admin_name(username):
                self.log.warning("refused a sign-up under the admin name %r", username)
                return None
            return super().create_user(username, password, **kwargs)

    return GuardedNativeAuthenticator


def make_guarded_shared_password_authenticator(base):
    """A SharedPasswordAuthenticator subclass that checks the name after the hub's normalization: an admin name,
    in any case or spelling the hub maps to it, logs in with the admin password only."""

    class GuardedSharedPasswordAuthenticator(base):
        @property
        def _throttle(self):
            if "_login_throttle" not in self.__dict__:
                self.__dict__["_login_throttle"] = LoginThrottle()
            return self.__dict__["_login_throttle"]

        async def authenticate(self, handler, data):
            data = dict(data or {})
            name = self.normalize_username(str(data.get("username") or ""))
            if self._throttle.blocked(name):
                self.log.warning("refused a login under the name %r: too many failed logins", name)
                return None
            result = await self._check(handler, data, name)
            if result is None:
                self._throttle.failed(name)
            else:
                self._throttle.succeeded(name)
            return result

        async def _check(self, handler, data, name):
            admins = {self.normalize_username(a) for a in self.admin_users}
            if name in admins:
                given = str(data.get("password") or "")
                if self.admin_password and hmac.compare_digest(given.encode(), self.admin_password.encode()):
                    return {"name": name, "admin": True, "groups": []}
                self.log.warning("refused a login under the admin name %r without the admin password", name)
                return None
            # upstream, given the normalized name: the user password (or a group's) for every other name
            return await super().authenticate(handler, {**data, "username": name})

    return GuardedSharedPasswordAuthenticator
