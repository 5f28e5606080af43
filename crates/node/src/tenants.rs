//! Who is calling (API keys) and the operator's verbs on tenants.

use nullspace_core::{Error, Tenant, TenantName};
use nullspace_state::{ApiKey, Principal};

use crate::Node;

impl Node {
    /// Resolves a presented API key; `unauthenticated` when it matches no stored key.
    pub async fn authenticate(&self, key: &str) -> Result<Principal, Error> {
        Ok(self.inner.store.authenticate(&ApiKey::new(key)).await?)
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
