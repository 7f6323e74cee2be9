-- Each user's own language ("en", "ru", "ja", "zh_Hans") and time zone (an IANA name such
-- as "Europe/Moscow"), chosen on the My account page.  NULL: not chosen, so the browser's
-- Accept-Language and the install's [server] language and display_tz apply.
ALTER TABLE users ADD COLUMN language TEXT;
ALTER TABLE users ADD COLUMN timezone TEXT;
