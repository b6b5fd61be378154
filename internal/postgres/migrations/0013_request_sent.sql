-- When a confirmation mail leaves, the mail worker records the time in
-- this column instead of rewriting the request's record: no read,
-- decoding and encoding of the request per mail, and the statement sets
-- one time. A request read takes it as Request.Sent when its record has
-- none and the request was open then (consent.Request.MarkSent's rule,
-- applied on read: a dropped mail's closed request gets no sent time).
-- Requests marked before keep the time in their record.
ALTER TABLE requests ADD COLUMN sent timestamptz;

-- From this version on a request's record leaves out its id and its
-- subscriber's, which the row's columns hold; rows written before keep
-- them (the same values), so nothing is rewritten here.
