"""User impersonation (``kubectl --as``, ``--as-group``, ``--as-uid``), as the API server's
impersonation filter does it.

The ``Impersonate-User``, ``Impersonate-Group``, ``Impersonate-Uid`` and
``Impersonate-Extra-<key>`` headers each need the ``impersonate`` verb on what they name:
``users``, ``groups`` or, for a ``system:serviceaccount:NS:NAME`` user, that
``serviceaccounts`` object in NS (core group); ``uids`` and ``userextras/<key>`` in
``authentication.k8s.io``. The request then runs as the impersonated user: its groups are
those asked for (a ServiceAccount's own when none are) plus ``system:authenticated``
(``system:unauthenticated`` for ``system:anonymous``) unless one of those was asked for.
Groups, uid or extras without a user are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from lab.apiserver.errors import bad_request
from lab.apiserver.rbac import Attributes, User

USER = "impersonate-user"
GROUP = "impersonate-group"
UID = "impersonate-uid"
EXTRA = "impersonate-extra-"
_AUTHN = "authentication.k8s.io"
_SA_PREFIX = "system:serviceaccount:"
_ANONYMOUS = "system:anonymous"
_AUTHENTICATED = "system:authenticated"
_UNAUTHENTICATED = "system:unauthenticated"


def requested(headers: dict[str, list[str]]) -> bool:
    return any(name in (USER, GROUP, UID) or name.startswith(EXTRA) for name in headers)


def checks(headers: dict[str, list[str]]) -> tuple[User, list[Attributes]]:
    """The user asked for and the ``impersonate`` checks that asking needs (pure)."""
    users = headers.get(USER, [])
    groups = headers.get(GROUP, [])
    uids = headers.get(UID, [])
    extras = {
        unquote(name.removeprefix(EXTRA)): values
        for name, values in headers.items()
        if name.startswith(EXTRA)
    }
    if len(users) != 1 or not users[0]:
        if users:
            raise bad_request("exactly one Impersonate-User header is allowed")
        raise bad_request(
            "requested impersonation of groups, a uid or extras without impersonating a user"
        )
    name = users[0]
    needed: list[Attributes] = []
    asked = list(groups)
    if name.startswith(_SA_PREFIX) and name.count(":") == 3:
        namespace, sa = name.removeprefix(_SA_PREFIX).split(":")
        needed.append(Attributes("impersonate", "", "serviceaccounts", "", namespace, sa))
        if not groups:  # a ServiceAccount's groups are known: a fixed mapping
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    else:
        needed.append(Attributes("impersonate", "", "users", name=name))
    needed += [Attributes("impersonate", "", "groups", name=g) for g in asked]
    if len(uids) > 1:
        raise bad_request("at most one Impersonate-Uid header is allowed")
    needed += [Attributes("impersonate", _AUTHN, "uids", name=u) for u in uids]
    for key, values in extras.items():
        needed += [Attributes("impersonate", _AUTHN, "userextras", key, name=v) for v in values]
    return User(name, tuple(groups) + _implied(name, groups)), needed


def _implied(name: str, groups: list[str]) -> tuple[str, ...]:
    """system:authenticated for anyone but system:anonymous (system:unauthenticated), unless
    either is asked for, as the real filter adds them."""
    if name == _ANONYMOUS:
        return () if _UNAUTHENTICATED in groups else (_UNAUTHENTICATED,)
    if _AUTHENTICATED in groups or _UNAUTHENTICATED in groups:
        return ()
    return (_AUTHENTICATED,)


def impersonated(headers: dict[str, list[str]], authorize: Callable[[Attributes], None]) -> User:
    """The user the request runs as; ``authorize`` raises 403 for a check that fails."""
    user, needed = checks(headers)
    for attrs in needed:
        authorize(attrs)
    return user
