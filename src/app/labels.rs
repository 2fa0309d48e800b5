//! The organization's labels (name and color, unique name per organization). Admins manage the
//! set; every member can put labels on conversations (see `inbox::set_labels`).

use uuid::Uuid;

use crate::domain::{self, Invalid, Role};
use crate::store::Label;

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

const MAX_NAME_CHARS: usize = 50;

/// A label name: trimmed, 1 to 50 characters, no control characters.
fn name(value: &str) -> AppResult<String> {
    let value = value.trim();
    let chars = value.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || value.chars().any(char::is_control) {
        return Err(Invalid::new(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, without control characters"),
        )
        .into());
    }
    Ok(value.to_owned())
}

/// A color: `#rrggbb`.
fn color(value: Option<&str>) -> AppResult<Option<String>> {
    match value {
        None => Ok(None),
        Some(c) if c.len() == 7 && c.starts_with('#') && c[1..].bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Some(c.to_ascii_lowercase()))
        }
        Some(_) => Err(Invalid::new("color", "must be #rrggbb").into()),
    }
}

pub async fn list(app: &App, access: &OrgAccess) -> AppResult<Vec<Label>> {
    Ok(app.store.labels(access.org_id()).await?)
}

pub async fn create(
    app: &App,
    access: &OrgAccess,
    label_name: &str,
    label_color: Option<&str>,
) -> AppResult<Label> {
    access.require(Role::Admin)?;
    let label = Label {
        id: domain::new_id(),
        organization_id: access.org_id(),
        name: name(label_name)?,
        color: color(label_color)?,
        created_at: domain::now(),
    };
    Ok(app.store.insert_label(&label).await?)
}

/// Renames and/or recolors; `color: Some(None)` removes the color.
pub async fn update(
    app: &App,
    access: &OrgAccess,
    id: Uuid,
    new_name: Option<&str>,
    new_color: Option<Option<&str>>,
) -> AppResult<Label> {
    access.require(Role::Admin)?;
    let current = app
        .store
        .labels(access.org_id())
        .await?
        .into_iter()
        .find(|l| l.id == id)
        .ok_or(AppError::NotFound)?;
    let label = Label {
        name: new_name.map(name).transpose()?.unwrap_or(current.name.clone()),
        color: match new_color {
            Some(c) => color(c)?,
            None => current.color.clone(),
        },
        ..current
    };
    app.store.update_label(&label).await?.ok_or(AppError::NotFound)
}

/// Deletes the label and takes it off every conversation.
pub async fn delete(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<()> {
    access.require(Role::Admin)?;
    if app.store.delete_label(access.org_id(), id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_colors_are_checked() {
        assert_eq!(name("  VIP ").unwrap(), "VIP");
        assert!(name("").is_err() && name(&"x".repeat(51)).is_err() && name("a\nb").is_err());
        assert_eq!(color(Some("#FFaa00")).unwrap().as_deref(), Some("#ffaa00"));
        assert!(color(Some("red")).is_err() && color(Some("#12345g")).is_err());
        assert_eq!(color(None).unwrap(), None);
    }
}
