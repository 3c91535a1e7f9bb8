-- The referral funnel: invites sent, how many customers share, how many invites turn into
-- customers, and the viral k-factor. Invites count in the month they were sent, by the
-- inviter's market and the share channel; an invite counts as accepted when accepted by the
-- run date, and as converted when it brought a new buyer (stg_invites: the invitee's first
-- accepted invite, their first purchase at or after it), the one definition kpi_monthly's
-- invite_conversion uses too. The share rate counts sharers who also bought in the month, so it is a share of the
-- month's buyers, as kpi_monthly's invite_share_rate; the k-factor counts new buyers, not
-- acceptances (an accepted invite that never leads to a purchase brings nobody).
-- grain: one row per (month_start, market, share_channel) with at least one invite sent or one referred customer acquired
-- materialized: table
-- columns:
--   month_start: first day of the calendar month (each market's in its own time zone, [time_zone])
--   market: the inviter's market (for referred customers: the new customer's market)
--   share_channel: how the invite was shared (whatsapp, line, link, ...)
--   invites_sent: invites sent in the month
--   sharers: distinct customers who sent at least one of those invites
--   buying_sharers: of those, customers who also bought in the month
--   active_customers: distinct customers of the market with a purchase in the month (all share channels)
--   share_rate: buying_sharers / active_customers, at most 1; null without active customers
--   invites_accepted: invites sent in the month and accepted by the run date
--   converted_invites: of those, invites that brought a new buyer by the run date (stg_invites)
--   invite_conversion: converted_invites / invites_sent, the plan's share conversion (section 5.3: act below 5%); null without invites
--   referred_new_customers: customers acquired (first purchase) in the month after accepting an invite, counted under that invite's share channel and their own market
--   k_factor: referred_new_customers / active_customers: new buying customers each active customer brought in through invites
with invites_in as (
    select market, share_channel, inviter_customer_id, month_start, accepted, converted, invitee_market,
        invitee_acquisition_month
    from stg_invites
),

customer_months as (
    select customer_id, market, activity_month from stg_customer_months
),

sent as (
    select
        month_start,
        market,
        share_channel,
        count(*) as invites_sent,
        count(distinct inviter_customer_id) as sharers,
        sum(case when accepted then 1 else 0 end) as invites_accepted,
        sum(case when converted then 1 else 0 end) as converted_invites
    from invites_in
    group by 1, 2, 3
),

referred as (
    select
        invitee_acquisition_month as month_start,
        invitee_market as market,
        share_channel,
        count(*) as referred_new_customers
    from invites_in
    where converted
    group by 1, 2, 3
),

buying_sharers as (
    select
        sent_by.month_start,
        customer_months.market,
        sent_by.share_channel,
        count(*) as buying_sharers
    from (
        select distinct month_start, inviter_customer_id, share_channel
        from invites_in
    ) as sent_by
    join customer_months
        on sent_by.inviter_customer_id = customer_months.customer_id
        and sent_by.month_start = customer_months.activity_month
    group by 1, 2, 3
),

active as (
    select activity_month as month_start, market, count(*) as active_customers
    from customer_months
    group by activity_month, market
),

funnel as (
    select
        coalesce(sent.month_start, referred.month_start) as month_start,
        coalesce(sent.market, referred.market) as market,
        coalesce(sent.share_channel, referred.share_channel) as share_channel,
        coalesce(sent.invites_sent, 0) as invites_sent,
        coalesce(sent.sharers, 0) as sharers,
        coalesce(sent.invites_accepted, 0) as invites_accepted,
        coalesce(sent.converted_invites, 0) as converted_invites,
        coalesce(referred.referred_new_customers, 0) as referred_new_customers
    from sent
    full outer join referred
        on sent.month_start = referred.month_start
        and sent.market = referred.market
        and sent.share_channel = referred.share_channel
)

select
    funnel.month_start,
    funnel.market,
    funnel.share_channel,
    funnel.invites_sent,
    funnel.sharers,
    coalesce(buying_sharers.buying_sharers, 0) as buying_sharers,
    coalesce(active.active_customers, 0) as active_customers,
    case
        when active.active_customers > 0
            then cast(coalesce(buying_sharers.buying_sharers, 0) as double) / active.active_customers
    end as share_rate,
    funnel.invites_accepted,
    funnel.converted_invites,
    case when funnel.invites_sent > 0 then cast(funnel.converted_invites as double) / funnel.invites_sent end
        as invite_conversion,
    funnel.referred_new_customers,
    case when active.active_customers > 0 then cast(funnel.referred_new_customers as double) / active.active_customers end
        as k_factor
from funnel
left join active
    on funnel.month_start = active.month_start
    and funnel.market = active.market
left join buying_sharers
    on funnel.month_start = buying_sharers.month_start
    and funnel.market = buying_sharers.market
    and funnel.share_channel = buying_sharers.share_channel
order by funnel.month_start, funnel.market, funnel.share_channel
