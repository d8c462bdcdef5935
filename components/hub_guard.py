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

The option-type guard: JupyterHub stores a start request's ``user_options`` as sent and hands them back (after a
restart too); KubeSpawner reads a falsy ``profile`` (``[]``) as "the default profile". Every value must be a
string (what the spawn form sends), else the start is refused with a 400 that names the option.

Self-contained on purpose: the file's text is what the hub executes (standard library, KubeSpawner and,
for native login, NativeAuthenticator, all in the chart's hub image).
"""

import hmac
import inspect
import os
import re
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
        f"you use {held} of your {limit} GPUs (servers: {names or 'none'}) and this server asks for {requested}: "
        "stop one first, or pick fewer GPUs"
    )


async def maybe_awaited(value):
    """``value``, awaited when it is awaitable (JupyterHub's hooks may be either)."""
    return await value if inspect.isawaitable(value) else value


def make_guarded_spawner(base, pinned, pattern, registry_text, quota=None):
    """A KubeSpawner subclass that enforces the image rule and the per-user GPU quota on every spawn."""
    quota = quota or {}

    class GuardedKubeSpawner(base):
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
            self._check_gpu_quota()

        def _check_gpu_quota(self):
            user = self.user
            groups = [g.name for g in getattr(user, "groups", None) or [] if isinstance(getattr(g, "name", None), str)]
            limit = gpu_limit(quota, groups, getattr(user, "admin", False) is True)
            spawners = getattr(user, "spawners", None)
            others = []
            for name, spawner in sorted(spawners.items() if isinstance(spawners, Mapping) else []):
                if spawner is self or not getattr(spawner, "active", False):
                    continue
                others.append((name, gpus_of(getattr(spawner, "extra_resource_limits", {}))))
            problem = quota_problem(gpus_of(self.extra_resource_limits), others, limit)
            if problem:
                raise ValueError(problem)

    return GuardedKubeSpawner


def make_guarded_native_authenticator(base, password_env="GPU_JUPYTERHUB_ADMIN_PASSWORD"):
    """A NativeAuthenticator subclass: admin names log in only with the deploy's password, and no sign-up
    is ever pre-approved."""

    class GuardedNativeAuthenticator(base):
        def _is_admin_name(self, username):
            return self.normalize_username(username or "") in set(self.admin_users)

        async def authenticate(self, handler, data):
            name = self.normalize_username((data or {}).get("username") or "")
            if self._is_admin_name(name):
                expected = os.environ.get(password_env, "")
                given = (data or {}).get("password") or ""
                if expected and hmac.compare_digest(given.encode(), expected.encode()):
                    return {"name": name, "admin": True}
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
        async def authenticate(self, handler, data):
            data = dict(data or {})
            name = self.normalize_username(str(data.get("username") or ""))
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
