-- Researcher outreach requests from the contact form, kept until the e-mail is sent.

create table contact_requests (
  id              bigint generated always as identity primary key,
  participant_id  text        not null,
  requester_name  text        not null,
  requester_email text        not null,
  subject         text        not null,
  message         text        not null,
  status          text        not null default 'pending'
                  check (status in ('pending', 'sent', 'failed')),
  attempts        integer     not null default 0,
  last_error      text,
  next_attempt_at timestamptz not null default now(),
  created_at      timestamptz not null default now(),
  sent_at         timestamptz
);

create index contact_requests_outbox on contact_requests (next_attempt_at) where status <> 'sent';
