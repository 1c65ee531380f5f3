-- Nothing reads the access log by principal any more (a principal's last uses are kept in
-- access_last_use), and every request's row paid for keeping this index: a busy deploy
-- gate writes thousands of rows a second.
DROP INDEX access_log_principal;
