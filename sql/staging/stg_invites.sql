-- Invites with what they led to, decided once for the scorecards and the referral funnel: an
-- invite converted when it is the invitee's first accepted invite (by accepted_ts, then
-- invite_id) and the invitee's first purchase came at or after its acceptance, by the run date.
-- The plan's share conversion (section 5.3) is converted invites over invites sent. Inviters
-- who never bought count under their own market and channel; inviters no table knows, under
-- 'unknown'.
-- grain: one row per invite sent by the run date
-- materialized: table
-- columns:
--   invite_id: the invite
--   inviter_customer_id: who sent it
--   market: the inviter's market (stg_customers), else unknown
--   channel: the inviter's acquisition channel (stg_customers), else unknown
--   share_channel: how it was shared (whatsapp, line, link, ...)
--   sent_ts: when it was sent (UTC)
--   day_number: the day it was sent in the inviter's market time ([time_zone]), in days since 1970-01-01
--   month_index: months since year 0 of the month it was sent
--   month_start: first day of the month it was sent, in the inviter's market time
--   accepted: whether it was accepted by the run date
--   converted: whether it brought a new buyer, by the rule above
--   invitee_market: the invitee's market, where it converted
--   invitee_acquisition_month: the invitee's acquisition_month (stg_customers), where it converted
with invites_in as (
    select
        invite_id, inviter_customer_id, invitee_customer_id, share_channel, sent_ts, accepted_ts
    from invites
),

customers_in as (
    select customer_id, market, acquisition_channel, first_purchase_ts, acquisition_month
    from stg_customers
),

first_acceptances as (
    select invite_id
    from (
        select
            invite_id,
            row_number() over (partition by invitee_customer_id order by accepted_ts, invite_id) as acceptance
        from invites_in
        where accepted_ts is not null and invitee_customer_id is not null
    ) as ranked
    where acceptance = 1
),

-- each invite with its inviter, its invitee's outcome, and its time in the inviter's market,
-- reckoned once; the one-row settings first: a cross join holds its left side in memory
located as (
    select
        invites_in.invite_id,
        invites_in.inviter_customer_id,
        inviters.market as inviter_market,
        inviters.acquisition_channel as inviter_channel,
        invites_in.share_channel,
        invites_in.sent_ts,
        market_time(invites_in.sent_ts, inviters.market, settings.time_zones) as local_ts,
        invites_in.accepted_ts,
        first_acceptances.invite_id is not null
        and invitees.first_purchase_ts >= invites_in.accepted_ts as converts,
        invitees.market as invitee_market,
        invitees.acquisition_month as invitee_acquisition_month
    from settings
    cross join invites_in
    left join customers_in as inviters on invites_in.inviter_customer_id = inviters.customer_id
    left join customers_in as invitees on invites_in.invitee_customer_id = invitees.customer_id
    left join first_acceptances on invites_in.invite_id = first_acceptances.invite_id
)

select
    located.invite_id,
    located.inviter_customer_id,
    coalesce(located.inviter_market, 'unknown') as market,
    coalesce(located.inviter_channel, 'unknown') as channel,
    located.share_channel,
    located.sent_ts,
    cast(cast(located.local_ts as date) as int) as day_number,
    cast(date_part('year', located.local_ts) as int) * 12
    + cast(date_part('month', located.local_ts) as int) - 1 as month_index,
    cast(date_trunc('month', located.local_ts) as date) as month_start,
    located.accepted_ts is not null as accepted,
    coalesce(located.converts, false) as converted,
    case when located.converts then located.invitee_market end as invitee_market,
    case when located.converts then located.invitee_acquisition_month end as invitee_acquisition_month
from run_context
cross join located
-- `invites` has no market, so it is cut at the end of the run date in the last market's time;
-- an invite sent after the end of the run date in its inviter's market waits for the next run.
where cast(located.local_ts as date) <= run_context.run_date
order by located.invite_id
