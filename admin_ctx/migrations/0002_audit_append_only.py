from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION gtv_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER admin_ctx_auditentry_append_only
    BEFORE UPDATE OR DELETE ON admin_ctx_auditentry
    FOR EACH ROW EXECUTE FUNCTION gtv_audit_append_only();
"""

ALLOW = """
DROP TRIGGER IF EXISTS admin_ctx_auditentry_append_only ON admin_ctx_auditentry;
DROP FUNCTION IF EXISTS gtv_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("admin_ctx", "0001_initial")]

    operations = [migrations.RunSQL(FORBID, ALLOW)]
