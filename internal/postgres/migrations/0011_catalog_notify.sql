-- Each instance answers reads of forms and topics from memory (the
-- signup path reads both on every signup) and forgets them when any
-- transaction that changed either table commits: the trigger notifies
-- the channel optin_catalog, which every instance listens on.
CREATE FUNCTION optin_catalog_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('optin_catalog', '');
	RETURN NULL;
END $$;

CREATE TRIGGER forms_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON forms
	FOR EACH STATEMENT EXECUTE FUNCTION optin_catalog_changed();
CREATE TRIGGER topics_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON topics
	FOR EACH STATEMENT EXECUTE FUNCTION optin_catalog_changed();
