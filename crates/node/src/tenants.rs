//! Who is calling (API keys), what each role may do, keys' lifecycle, and the operator's
//! verbs on tenants.

use chrono::Utc;
use nullspace_core::wire::{CreateKey, CreateToken, CreatedKey, KeyInfo, Role};
use nullspace_core::{Error, Tenant, TenantName};
use nullspace_state::{ApiKey, NewKey, Principal, TokenScope};

use crate::Node;

impl Node {
    /// Resolves a presented API key; `unauthenticated` when it matches no stored key.
    pub async fn authenticate(&self, key: &str) -> Result<Principal, Error> {
        Ok(self.inner.store.authenticate(&ApiKey::new(key)).await?)
    }

    /// Creates a key in the caller's tenant (or, for operator keys, in `req.tenant`). A key
    /// makes keys of its own role or a lower one; read-only keys make none.
    pub async fn create_key(
        &self,
        caller: &Principal,
        req: &CreateKey,
    ) -> Result<CreatedKey, Error> {
        authorize(caller, Permission::Keys, false)?;
        let role = req.role.unwrap_or(Role::Member);
        if role.rank() > caller.role.rank() {
            return Err(Error::permission_denied(format!(
                "a {} key cannot make {} keys",
                caller.role.as_str(),
                role.as_str()
            )));
        }
        let name = match &req.name {
            None => None,
            Some(n)
                if n.is_empty()
                    || n.chars().count() > MAX_KEY_NAME
                    || n.chars().any(char::is_control) =>
            {
                return Err(Error::invalid_argument(format!(
                    "name must be 1 to {MAX_KEY_NAME} characters without control characters"
                )))
            }
            Some(n) => Some(n.clone()),
        };
        let expires_at = match req.expires_in {
            None => None,
            Some(s) if s == 0 || s > MAX_KEY_EXPIRY_SECS => {
                return Err(Error::invalid_argument(format!(
                    "expires_in must be between 1 and {MAX_KEY_EXPIRY_SECS} seconds (10 years), not {s}"
                )))
            }
            Some(s) => Some(Utc::now() + chrono::Duration::seconds(s as i64)),
        };
        let tenant_id = match &req.tenant {
            None => caller.tenant_id.clone(),
            Some(t) => {
                require_admin(caller)?;
                let name = TenantName::parse(t)?;
                self.inner.store.get_tenant(&name).await?.id
            }
        };
        let (info, key) = self
            .inner
            .store
            .create_key(
                &tenant_id,
                &NewKey {
                    name,
                    role,
                    expires_at,
                    token: None,
                },
                self.volumes().tenant_defaults(),
            )
            .await?;
        Ok(CreatedKey {
            key: key.expose().to_owned(),
            info,
        })
    }

    /// Makes a token for one of the caller's volumes: a bearer credential for that volume's
    /// files only (read-only if asked), living at most 7 days and revoked with the key that
    /// made it. Admin and member keys make them (the route needs `Keys`); tokens make none.
    pub async fn create_token(
        &self,
        caller: &Principal,
        volume: &str,
        req: &CreateToken,
    ) -> Result<CreatedKey, Error> {
        if caller.token.is_some() {
            return Err(Error::permission_denied(
                "a volume token cannot make tokens",
            ));
        }
        if !req.read_only {
            authorize(caller, Permission::Write, false)?;
        }
        if req.expires_in == 0 || req.expires_in > crate::MAX_EXPIRY_SECS {
            return Err(Error::invalid_argument(format!(
                "expires_in must be between 1 and {} seconds (7 days), not {}",
                crate::MAX_EXPIRY_SECS,
                req.expires_in
            )));
        }
        let path = match &req.path {
            None => nullspace_core::VolumePath::root(),
            Some(p) => nullspace_core::VolumePath::parse(p)?,
        };
        // The directory must be there now (a typo is caught here); later, a token whose
        // directory is gone sees nothing (`VolumeService::open`).
        let v = self
            .volumes()
            .open(caller, volume)
            .await?
            .scoped(&path)
            .await?
            .volume;
        let name = if path.is_root() {
            format!("token for volume {}", v.name)
        } else {
            format!("token for {}:{}", v.name, path)
        };
        let (info, key) = self
            .inner
            .store
            .create_key(
                &caller.tenant_id,
                &NewKey {
                    name: Some(name),
                    role: if req.read_only {
                        Role::ReadOnly
                    } else {
                        Role::Member
                    },
                    expires_at: Some(Utc::now() + chrono::Duration::seconds(req.expires_in as i64)),
                    token: Some((
                        caller.key_id.clone(),
                        TokenScope {
                            volume_id: v.id.clone(),
                            read_only: req.read_only,
                            path,
                        },
                    )),
                },
                self.volumes().tenant_defaults(),
            )
            .await?;
        Ok(CreatedKey {
            key: key.expose().to_owned(),
            info,
        })
    }

    /// The keys of the caller's tenant (any role may list; never a secret).
    pub async fn list_keys(&self, caller: &Principal) -> Result<Vec<KeyInfo>, Error> {
        authorize(caller, Permission::Read, false)?;
        Ok(self.inner.store.list_keys(&caller.tenant_id).await?)
    }

    /// Revokes one of the caller's tenant's keys, at once for every server on the database:
    /// admin keys revoke any, member keys member and read-only ones, read-only keys none. A
    /// key of another tenant is `not_found`.
    pub async fn revoke_key(&self, caller: &Principal, id: &str) -> Result<KeyInfo, Error> {
        authorize(caller, Permission::Keys, false)?;
        let key = self.inner.store.get_key(&caller.tenant_id, id).await?;
        if key.role.rank() > caller.role.rank() {
            return Err(Error::permission_denied(format!(
                "a {} key cannot revoke {} keys",
                caller.role.as_str(),
                key.role.as_str()
            )));
        }
        Ok(self.inner.store.revoke_key(&caller.tenant_id, id).await?)
    }

    /// Creates a tenant and its first key (returned in plain text, once). Admin keys only.
    pub async fn create_tenant(
        &self,
        caller: &Principal,
        name: &str,
    ) -> Result<(Tenant, String), Error> {
        require_admin(caller)?;
        let name = TenantName::parse(name)?;
        let (tenant, key) = self.inner.store.create_tenant(&name).await?;
        Ok((tenant, key.expose().to_owned()))
    }

    /// Sets the cap given to a tenant's new volumes. Admin keys only.
    pub async fn set_volume_cap(
        &self,
        caller: &Principal,
        tenant: &str,
        cap_bytes: u64,
    ) -> Result<Tenant, Error> {
        require_admin(caller)?;
        let name = TenantName::parse(tenant)?;
        if cap_bytes == 0 || cap_bytes > i64::MAX as u64 {
            return Err(Error::invalid_argument(
                "cap_bytes must be between 1 and 2^63-1",
            ));
        }
        Ok(self
            .inner
            .store
            .set_tenant_volume_cap(&name, cap_bytes)
            .await?)
    }
}

/// Longest key name, in characters.
pub const MAX_KEY_NAME: usize = 100;

/// Longest key lifetime: 10 years.
pub const MAX_KEY_EXPIRY_SECS: u64 = 10 * 365 * 24 * 3600;

/// What a route needs of its caller. The API gives each route one (`api::auth`), and this is
/// the one place that says which roles have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Reads, lists, stats, search, watch, downloads, `whoami`, key listings.
    Read,
    /// Every change to volumes and sandboxes (signed-URL creation included: a URL is a
    /// capability, and a PUT one writes).
    Write,
    /// Creating and revoking keys (then limited by role, see [`Node::create_key`]).
    Keys,
    /// Operator verbs: admin keys of the `default` tenant.
    Operator,
}

/// `permission_denied` unless the caller's role grants `needed`. A volume token reaches only
/// its volume's file routes (`file_route`: files, tus uploads, watch, archive, signed-URL
/// creation); which volume is checked where volumes are looked up (`VolumeService::get`).
pub fn authorize(caller: &Principal, needed: Permission, file_route: bool) -> Result<(), Error> {
    if let Some(t) = &caller.token {
        let granted = file_route
            && (needed == Permission::Read || needed == Permission::Write && !t.read_only);
        return if granted {
            Ok(())
        } else if file_route {
            Err(Error::permission_denied(
                "a read-only volume token cannot change anything",
            ))
        } else {
            Err(Error::permission_denied(
                "a volume token works only on its volume's files",
            ))
        };
    }
    let granted = match (caller.role, needed) {
        (_, Permission::Read) => true,
        (Role::Admin | Role::Member, Permission::Write | Permission::Keys) => true,
        (_, Permission::Operator) => caller.admin,
        (Role::ReadOnly, _) => false,
    };
    if granted {
        Ok(())
    } else if needed == Permission::Operator {
        Err(Error::permission_denied("this needs an admin key"))
    } else {
        Err(Error::permission_denied(format!(
            "a {} key cannot do this",
            caller.role.as_str()
        )))
    }
}

/// Refuses callers without an admin key.
fn require_admin(caller: &Principal) -> Result<(), Error> {
    if caller.admin {
        Ok(())
    } else {
        Err(Error::permission_denied("this needs an admin key"))
    }
}

impl Node {
    /// A tenant's limits in force and what it holds. Admin keys only.
    pub async fn tenant_limits(
        &self,
        caller: &Principal,
        tenant: &str,
    ) -> Result<nullspace_core::wire::TenantLimits, Error> {
        require_admin(caller)?;
        let name = TenantName::parse(tenant)?;
        let (t, own, usage) = self.inner.store.tenant_limits(&name).await?;
        let defaults = self.volumes().tenant_defaults();
        Ok(crate::limits::shown(&t.name, &own, defaults, &usage))
    }

    /// Sets some of a tenant's limits (the others stay); answers the limits in force. Lowering
    /// a limit below what the tenant holds removes nothing: new creates are refused until it
    /// is back under. Admin keys only.
    pub async fn set_tenant_limits(
        &self,
        caller: &Principal,
        tenant: &str,
        req: &nullspace_core::wire::SetTenantLimits,
    ) -> Result<nullspace_core::wire::TenantLimits, Error> {
        require_admin(caller)?;
        let name = TenantName::parse(tenant)?;
        let limits = crate::limits::parse_set(req)?;
        self.inner.store.set_tenant_limits(&name, &limits).await?;
        self.tenant_limits(caller, tenant).await
    }
}
