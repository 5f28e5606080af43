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
