// The sandbox page: polls /sandbox/api/state and draws Slack's Block Kit; every click
// goes to /sandbox/api/..., where the server turns it into a signed Slack request.
// Everything shown came from email or from the bot, so nothing here ever assigns
// innerHTML: the page is built from elements and text nodes only.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const page = {
    user: localStorage.getItem("sandbox.user") || "",
    view: "channel",
    tab: "mail",
    thread: null,
    state: null,
    drawn: {},
    modalKey: null,
  };

  // -- small DOM helpers ------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null) node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
  }

  async function api(action, body) {
    const response = await fetch(`/sandbox/api/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: page.user, ...body }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) toast(answer.error || `${action} failed (${response.status})`);
    else if (answer.ok === false) toast(`The bot answered ${answer.status}: ${JSON.stringify(answer.answer)}`);
    await refresh();
    return answer;
  }

  // -- Slack's text formatting ---------------------------------------------------------------

  const EMOJI = {
    large_green_circle: "🟢", large_blue_circle: "🔵", red_circle: "🔴", white_check_mark: "✅",
    hourglass_flowing_sand: "⏳", hourglass: "⌛", paperclip: "📎", warning: "⚠️", robot_face: "🤖",
    speech_balloon: "💬", incoming_envelope: "📨", outbox_tray: "📤", mailbox_with_mail: "📬",
    envelope: "✉️", wave: "👋", bell: "🔔", pager: "📟", calendar: "📅", date: "📅", zzz: "💤",
    rotating_light: "🚨", phone: "📞", telephone_receiver: "📞", moon: "🌙", sunny: "☀️",
    crescent_moon: "🌙", repeat: "🔁", arrows_counterclockwise: "🔄", x: "❌", no_entry: "⛔",
    bust_in_silhouette: "👤", busts_in_silhouette: "👥", pencil: "📝", memo: "📝", label: "🏷️",
    lock: "🔒", key: "🔑", tada: "🎉", eyes: "👀", clock1: "🕐", alarm_clock: "⏰", inbox_tray: "📥",
    information_source: "ℹ️", heavy_check_mark: "✔️", thumbsup: "👍", "+1": "👍", point_right: "👉",
    beach_with_umbrella: "🏖️", palm_tree: "🌴", scales: "⚖️", chart_with_upwards_trend: "📈",
    bar_chart: "📊", hammer_and_wrench: "🛠️", construction: "🚧", fire: "🔥", sos: "🆘", sunrise: "🌅",
    city_sunset: "🌆", night_with_stars: "🌃", handshake: "🤝", arrow_right: "➡️", raised_hand: "✋",
  };

  function emojify(text) {
    return text.replace(/:([a-z0-9_+-]+):/g, (whole, name) => EMOJI[name] || whole);
  }

  // Slack escapes &, < and > in message text; control sequences are the only real <…>.
  function unescape(text) {
    return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function personName(id) {
    const people = (page.state && page.state.people) || {};
    return people[id] || id;
  }

  const DATE_TOKENS = /\{(date_num|date_short_pretty|date_long_pretty|date_pretty|date_short|date_long|date|time_secs|time|ago)\}/g;

  function slackDate(unix, format) {
    const when = new Date(unix * 1000);
    const zone = (page.state && page.state.timezone) || undefined;
    const fmt = (options) => new Intl.DateTimeFormat("en-GB", { timeZone: zone, ...options }).format(when);
    const dayOf = (d) => new Intl.DateTimeFormat("en-CA", { timeZone: zone }).format(d);
    const pretty = (fallback) => {
      const now = new Date((page.state && Date.parse(page.state.clock.now)) || Date.now());
      const day = dayOf(when);
      if (day === dayOf(now)) return "today";
      if (day === dayOf(new Date(now.getTime() - 864e5))) return "yesterday";
      if (day === dayOf(new Date(now.getTime() + 864e5))) return "tomorrow";
      return fallback;
    };
    const values = {
      date_num: dayOf(when),
      date: fmt({ day: "numeric", month: "long", year: "numeric" }),
      date_short: fmt({ day: "numeric", month: "short", year: "numeric" }),
      date_long: fmt({ weekday: "long", day: "numeric", month: "long", year: "numeric" }),
      time: fmt({ hour: "2-digit", minute: "2-digit" }),
      time_secs: fmt({ hour: "2-digit", minute: "2-digit", second: "2-digit" }),
      ago: `${Math.max(0, Math.round((Date.now() - when.getTime()) / 60000))} minutes ago`,
    };
    values.date_pretty = pretty(values.date);
    values.date_short_pretty = pretty(values.date_short);
    values.date_long_pretty = pretty(values.date_long);
    return format.replace(DATE_TOKENS, (whole, token) => values[token]);
  }

  // One <…> control sequence: mentions, channels, dates, links.
  function control(inner) {
    const [target, label] = splitOnce(inner, "|");
    if (target.startsWith("@")) {
      const id = target.slice(1);
      return el("span", { className: id === page.user ? "mention me" : "mention" }, `@${personName(id)}`);
    }
    if (target.startsWith("#")) {
      const id = target.slice(1);
      const name = label || (page.state && page.state.channel.id === id ? page.state.channel.name : id);
      return el("span", { className: "mention" }, `#${unescape(name)}`);
    }
    if (target.startsWith("!date^")) {
      const [, unix, format] = target.split("^");
      const shown = Number(unix) ? slackDate(Number(unix), format || "{date_short}") : unescape(label || "");
      return el("span", { className: "date", title: unescape(label || "") }, shown);
    }
    if (target.startsWith("!subteam^")) {
      return el("span", { className: "mention" }, `@${unescape(label || target.slice(9))}`);
    }
    if (target.startsWith("!")) {
      return el("span", { className: "mention broadcast" }, `@${unescape(label || target.slice(1))}`);
    }
    const url = unescape(target);
    if (/^(https?:|mailto:)/i.test(url)) {
      return el("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, unescape(label || target));
    }
    return document.createTextNode(unescape(inner));
  }

  function splitOnce(text, sep) {
    const at = text.indexOf(sep);
    return at < 0 ? [text, ""] : [text.slice(0, at), text.slice(at + 1)];
  }

  const INLINE = /<([^<>\n]+)>|`([^`\n]+)`|\*([^*\n]+)\*|(^|[\s(])_([^_\n]+)_(?=$|[\s.,;:!?)])|~([^~\n]+)~/g;

  function inline(text, depth) {
    const out = [];
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      const start = match.index + (match[4] ? match[4].length : 0);
      if (start > last) out.push(document.createTextNode(emojify(unescape(text.slice(last, start)))));
      if (match[1] !== undefined) out.push(control(match[1]));
      else if (match[2] !== undefined) out.push(el("code", {}, unescape(match[2])));
      else if (match[3] !== undefined) out.push(el("strong", {}, depth < 3 ? inline(match[3], depth + 1) : unescape(match[3])));
      else if (match[5] !== undefined) out.push(el("em", {}, depth < 3 ? inline(match[5], depth + 1) : unescape(match[5])));
      else if (match[6] !== undefined) out.push(el("s", {}, unescape(match[6])));
      last = match.index + match[0].length;
    }
    if (last < text.length) out.push(document.createTextNode(emojify(unescape(text.slice(last)))));
    return out;
  }

  function mrkdwn(text) {
    const box = el("div", { className: "mrkdwn" });
    const parts = String(text || "").split("```");
    parts.forEach((part, index) => {
      if (index % 2 === 1) {
        box.append(el("pre", {}, unescape(part.replace(/^\n/, ""))));
        return;
      }
      let quote = null;
      const lines = part.split("\n");
      lines.forEach((line, n) => {
        const quoted = line.match(/^(&gt;|>) ?(.*)$/);
        if (quoted) {
          if (!quote) { quote = el("blockquote"); box.append(quote); }
          if (quote.childNodes.length) quote.append(el("br"));
          quote.append(...inline(quoted[2], 0));
          return;
        }
        quote = null;
        box.append(...inline(line, 0));
        if (n < lines.length - 1) box.append(el("br"));
      });
    });
    return box;
  }

  function textObject(obj) {
    if (!obj) return "";
    if (obj.type === "mrkdwn") return mrkdwn(obj.text);
    return el("span", { className: "plain" }, obj.emoji === false ? obj.text : emojify(obj.text || ""));
  }

  function plain(obj) {
    return obj ? (obj.emoji === false ? obj.text : emojify(obj.text || "")) : "";
  }

  // -- Block Kit ------------------------------------------------------------------------------

  // ctx: where the blocks live ({where: "message"|"ephemeral", channel, ts} or {where: "view", view_id})
  function blocks(list, ctx) {
    const box = el("div", { className: "blocks" });
    (list || []).forEach((block, index) => {
      const blockId = block.block_id || `block${index}`;
      const drawn = blockNode(block, { ...ctx, blockId });
      if (drawn) box.append(drawn);
    });
    return box;
  }

  function blockNode(block, ctx) {
    switch (block.type) {
      case "header":
        return el("div", { className: "b-header" }, plain(block.text));
      case "divider":
        return el("hr", { className: "b-divider" });
      case "context":
        return el("div", { className: "b-context" }, (block.elements || []).map((e) =>
          e.type === "image" ? el("span", { className: "img-alt" }, `[${e.alt_text || "image"}]`) : textObject(e)));
      case "section": {
        const body = el("div", { className: "b-section-body" });
        if (block.text) body.append(textObject(block.text));
        if (block.fields) body.append(el("div", { className: "b-fields" }, block.fields.map((f) => el("div", {}, textObject(f)))));
        const node = el("div", { className: "b-section" }, body);
        if (block.accessory) node.append(element(block.accessory, ctx, false));
        return node;
      }
      case "actions":
        return el("div", { className: "b-actions" }, (block.elements || []).map((e) => element(e, ctx, false)));
      case "input":
        return inputBlock(block, ctx);
      case "image":
        return el("div", { className: "b-context" }, `[image: ${block.alt_text || ""}]`);
      case "rich_text":
        return el("div", { className: "b-section" }, richText(block));
      default:
        return el("div", { className: "b-unknown" }, `(a ${block.type} block)`);
    }
  }

  function richText(block) {
    const words = [];
    const walk = (node) => {
      if (node.text) words.push(node.text);
      if (node.type === "user") words.push(`@${personName(node.user_id)}`);
      (node.elements || []).forEach(walk);
    };
    walk(block);
    return words.join("");
  }

  function act(ctx, element, value) {
    const request = { where: ctx.where, block_id: ctx.blockId, action_id: element.action_id, value };
    if (ctx.where === "view") {
      request.view_id = ctx.view_id;
      request.values = ctx.view_id === modalViewId() ? modalValues() : {};
    } else {
      request.channel = ctx.channel;
      request.ts = ctx.ts;
    }
    if (element.confirm && !window.confirm(plain(element.confirm.text) || "Are you sure?")) return;
    api("act", request);
  }

  function options(element) {
    return element.options || (element.option_groups || []).flatMap((g) => g.options || []);
  }

  function optionNodes(element, selected) {
    const make = (o) => el("option", { value: o.value, selected: selected.includes(o.value) }, plain(o.text));
    if (element.option_groups) {
      return element.option_groups.map((g) => el("optgroup", { label: plain(g.label) }, (g.options || []).map(make)));
    }
    return (element.options || []).map(make);
  }

  function teamOptions(selected) {
    return ((page.state && page.state.team) || []).map((m) =>
      el("option", { value: m.id, selected: selected.includes(m.id) }, m.name));
  }

  // An interactive element. In an input block (`input` true) it only holds a value, read
  // on submit; elsewhere using it sends block_actions at once, as Slack does.
  function element(e, ctx, input) {
    const fire = (value) => { if (!input || e.dispatch_action) act(ctx, e, value); };
    const data = { action: e.action_id, block: ctx.blockId };
    switch (e.type) {
      case "button":
        return el("button", {
          type: "button", className: `btn ${e.style || ""}`, dataset: data,
          onclick: () => act(ctx, e, e.value),
        }, plain(e.text));
      case "overflow": {
        const menu = el("select", {
          className: "overflow", dataset: data, title: "More actions",
          onchange: (ev) => { const v = ev.target.value; ev.target.value = ""; if (v) act(ctx, e, v); },
        }, el("option", { value: "" }, "⋯"), options(e).map((o) => el("option", { value: o.value }, plain(o.text))));
        return menu;
      }
      case "static_select":
      case "external_select":
      case "users_select":
      case "conversations_select":
      case "channels_select": {
        const initial = e.type === "users_select" ? e.initial_user
          : e.type === "conversations_select" ? e.initial_conversation
          : e.type === "channels_select" ? e.initial_channel
          : (e.initial_option || {}).value;
        const chosen = initial ? [initial] : [];
        const items = e.type === "users_select" ? teamOptions(chosen)
          : e.type.endsWith("channels_select") || e.type === "conversations_select"
            ? [el("option", { value: page.state.channel.id, selected: true }, `#${page.state.channel.name}`)]
            : optionNodes(e, chosen);
        return el("select", {
          className: "select", dataset: data, onchange: (ev) => fire(ev.target.value),
        }, el("option", { value: "", selected: !initial }, plain(e.placeholder) || "Choose…"), items);
      }
      case "multi_static_select":
      case "multi_users_select": {
        const chosen = e.type === "multi_users_select" ? (e.initial_users || [])
          : (e.initial_options || []).map((o) => o.value);
        return el("select", {
          className: "select multi", multiple: true, dataset: data,
          onchange: (ev) => fire([...ev.target.selectedOptions].map((o) => o.value)),
        }, e.type === "multi_users_select" ? teamOptions(chosen) : optionNodes(e, chosen));
      }
      case "checkboxes":
      case "radio_buttons": {
        const chosen = e.type === "checkboxes" ? (e.initial_options || []).map((o) => o.value)
          : [(e.initial_option || {}).value];
        const name = `${ctx.blockId}:${e.action_id}:${Math.random()}`;
        const box = el("div", { className: "choices", dataset: { ...data, kind: e.type } });
        for (const o of e.options || []) {
          const input = el("input", {
            type: e.type === "checkboxes" ? "checkbox" : "radio", name, value: o.value, checked: chosen.includes(o.value),
            onchange: () => fire(e.type === "checkboxes" ? choicesValue(box) : o.value),
          });
          box.append(el("label", {}, input, " ", textObject(o.text)));
        }
        return box;
      }
      case "datepicker":
        return el("input", { type: "date", className: "picker", value: e.initial_date || "", dataset: data, onchange: (ev) => fire(ev.target.value) });
      case "timepicker":
        return el("input", { type: "time", className: "picker", value: e.initial_time || "", dataset: data, onchange: (ev) => fire(ev.target.value) });
      case "plain_text_input":
      case "email_text_input":
      case "url_text_input":
      case "number_input": {
        const props = {
          className: "text", dataset: data, value: e.initial_value || "",
          placeholder: plain(e.placeholder), maxLength: e.max_length || undefined,
        };
        return e.multiline ? el("textarea", { ...props, rows: 8 }) : el("input", { ...props, type: "text" });
      }
      case "image":
        return el("span", { className: "img-alt" }, `[${e.alt_text || "image"}]`);
      default:
        return el("span", { className: "b-unknown" }, `(${e.type})`);
    }
  }

  function choicesValue(box) {
    return [...box.querySelectorAll("input:checked")].map((i) => i.value);
  }

  function inputBlock(block, ctx) {
    const label = el("label", { className: "b-input-label" }, plain(block.label), block.optional ? el("span", { className: "optional" }, " (optional)") : null);
    const node = el("div", { className: "b-input", dataset: { blockId: ctx.blockId, kind: block.element.type } },
      label, element(block.element, ctx, true));
    if (block.hint) node.append(el("div", { className: "hint" }, plain(block.hint)));
    node.append(el("div", { className: "field-error" }));
    return node;
  }

  // -- messages -------------------------------------------------------------------------------

  function tsTime(ts) {
    return slackDate(Math.floor(Number(ts)), "{time}");
  }

  function messageNode(message, opts) {
    const isBot = message.bot_id || message.user === (page.state && page.state.bot);
    const who = isBot ? "supportbot" : personName(message.user);
    const head = el("div", { className: "msg-head" },
      el("span", { className: "who" }, who),
      isBot ? el("span", { className: "app-tag" }, "APP") : null,
      el("span", { className: "when" }, tsTime(message.ts)),
      message.edited ? el("span", { className: "edited" }, "(edited)") : null,
      opts.ephemeral ? el("span", { className: "only-you" }, "Only visible to you") : null);
    const ctx = { where: opts.ephemeral ? "ephemeral" : "message", channel: opts.channel, ts: message.ts };
    const files = message.files && message.files.length ? message.files : [];
    const body = message.blocks && message.blocks.length ? blocks(message.blocks, ctx)
      : files.length && !message.text ? null : mrkdwn(message.text);
    const node = el("div", {
      className: `msg${opts.ephemeral ? " ephemeral" : ""}`,
      dataset: { ts: message.ts, ticket: ticketNumber(message) },
    }, el("div", { className: "avatar" }, who.slice(0, 1).toUpperCase()),
    el("div", { className: "msg-main" }, head, body, files.length ? el("div", { className: "files" }, files.map(fileNode)) : null));
    if (opts.replies && message.replies && message.replies.length) {
      node.querySelector(".msg-main").append(el("button", {
        type: "button", className: "replies-link", onclick: () => openThread(message.ts),
      }, `${message.replies.length} ${message.replies.length === 1 ? "reply" : "replies"}`));
    }
    return node;
  }

  // The picture's size fitted into 360×240, known before it loads, so a thread drawn
  // scrolled to its end stays there.
  function previewSize(size) {
    const [w, h] = Array.isArray(size) ? size.map(Number) : [0, 0];
    if (!(w > 0 && h > 0)) return {};
    const scale = Math.min(1, 360 / w, 240 / h);
    return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(h * scale)) };
  }

  // A shared file as Slack shows one: a chip with its name, size and type, a download
  // link, and for a picture (known by its bytes, on the server) the picture itself.
  // The name is the customer's: it only ever becomes a text node or an attribute value.
  function fileNode(file) {
    const name = String(file.name || file.title || "file");
    const url = String(file.url || "");
    const type = String(file.pretty_type || "Binary");
    const link = (...children) => el("a", { href: url, download: name, title: `Download ${name}` }, ...children);
    const chip = el("div", { className: "file-chip" },
      el("div", { className: "file-icon" }, type.length <= 4 ? type : "FILE"),
      el("div", { className: "file-meta" },
        el("div", { className: "file-name" }, name),
        el("div", { className: "file-info" }, `${file.size_label || `${Number(file.size) || 0} B`} · ${type}`)),
      link("⬇"));
    const node = el("div", { className: "file", dataset: { file: String(file.id || "") } });
    if (file.preview) {
      node.append(el("a", { href: url, target: "_blank", rel: "noopener noreferrer", className: "file-preview" },
        el("img", { src: url, alt: name, ...previewSize(file.preview_size) })));
    }
    node.append(chip);
    return node;
  }

  function ticketNumber(message) {
    const meta = message.metadata || {};
    return meta.event_type === "supportbot_ticket" ? String((meta.event_payload || {}).number || "") : "";
  }

  function byTs(a, b) { return Number(a.ts) - Number(b.ts); }

  function drawFeed() {
    const s = page.state;
    const feed = $("feed");
    let items;
    if (page.view === "channel") {
      const channel = s.channel;
      const ephemerals = s.ephemerals.filter((e) => e.channel === channel.id && !e.thread_ts);
      items = [
        ...channel.messages.map((m) => ({ m, opts: { channel: channel.id, replies: true } })),
        ...ephemerals.map((m) => ({ m, opts: { channel: channel.id, ephemeral: true } })),
      ].sort((a, b) => byTs(a.m, b.m));
      $("main-title").textContent = `# ${channel.name}`;
    } else if (page.view === "dm") {
      items = s.dms.map((m) => ({ m, opts: { channel: s.dm_channel } }));
      $("main-title").textContent = "supportbot · Messages";
    } else {
      items = null;
      $("main-title").textContent = "supportbot · Home";
    }
    const key = JSON.stringify([page.view, page.user, items ? items.map((i) => i.m) : s.home, s.people]);
    if (page.drawn.feed === key) return;
    const atBottom = feed.scrollHeight - feed.scrollTop - feed.clientHeight < 40;
    page.drawn.feed = key;
    feed.replaceChildren();
    if (items === null) {
      feed.append(s.home ? blocks(s.home.blocks, { where: "view", view_id: s.home.id })
        : el("p", { className: "empty" }, "App Home has not been published for you yet."));
    } else if (!items.length) {
      feed.append(el("p", { className: "empty" }, page.view === "dm" ? "No direct messages from supportbot yet." : "No messages yet."));
    } else {
      for (const { m, opts } of items) feed.append(messageNode(m, opts));
    }
    if (atBottom || page.view !== "home") feed.scrollTop = feed.scrollHeight;
  }

  function openThread(ts) {
    page.thread = ts;
    showTab("thread");
    drawThread();
  }

  function drawThread() {
    const s = page.state;
    const box = $("thread-feed");
    const parent = page.thread && s.channel.messages.find((m) => m.ts === page.thread);
    const ephemerals = s.ephemerals.filter((e) => e.thread_ts && e.thread_ts === page.thread);
    const key = JSON.stringify([page.thread, parent, ephemerals, s.people, page.user]);
    if (page.drawn.thread === key) return;
    page.drawn.thread = key;
    box.replaceChildren();
    if (!parent) {
      box.append(el("p", { className: "empty" }, "Open a ticket's replies to see its thread."));
      return;
    }
    box.append(messageNode(parent, { channel: s.channel.id }), el("div", { className: "thread-rule" }, `${parent.replies.length} ${parent.replies.length === 1 ? "reply" : "replies"}`));
    const items = [
      ...parent.replies.map((m) => ({ m, opts: { channel: s.channel.id } })),
      ...ephemerals.map((m) => ({ m, opts: { channel: s.channel.id, ephemeral: true } })),
    ].sort((a, b) => byTs(a.m, b.m));
    for (const { m, opts } of items) box.append(messageNode(m, opts));
    box.scrollTop = box.scrollHeight;
  }

  // -- modals ---------------------------------------------------------------------------------

  function modalViewId() {
    return page.state && page.state.modal ? page.state.modal.id : null;
  }

  function modalValues() {
    const values = {};
    for (const block of $("modal").querySelectorAll(".b-input")) {
      const id = block.dataset.blockId;
      const control = block.querySelector("[data-action]");
      if (!control) continue;
      const kind = block.dataset.kind;
      if (kind === "checkboxes") values[id] = choicesValue(control);
      else if (kind === "radio_buttons") values[id] = (control.querySelector("input:checked") || {}).value || null;
      else if (control.multiple) values[id] = [...control.selectedOptions].map((o) => o.value);
      else values[id] = control.value === "" && control.tagName === "SELECT" ? null : control.value;
    }
    return values;
  }

  function drawModal() {
    const modal = page.state.modal;
    const backdrop = $("modal-backdrop");
    if (!modal) {
      backdrop.hidden = true;
      page.modalKey = null;
      return;
    }
    const key = `${modal.id}:${modal.hash}:${page.user}`;
    if (page.modalKey !== key) {
      page.modalKey = key;
      const ctx = { where: "view", view_id: modal.id };
      const box = $("modal");
      box.replaceChildren(
        el("div", { className: "modal-title" }, plain(modal.title), modal.stack_depth > 1 ? el("span", { className: "depth" }, ` (${modal.stack_depth})`) : null),
        el("div", { className: "modal-body" }, blocks(modal.blocks, ctx)),
        el("div", { className: "modal-foot" },
          el("button", { type: "button", className: "btn", dataset: { test: "modal-close" }, onclick: () => api("close", { view_id: modal.id }) }, plain(modal.close) || "Cancel"),
          modal.submit ? el("button", {
            type: "button", className: "btn primary", dataset: { test: "modal-submit" },
            onclick: () => api("submit", { view_id: modal.id, values: modalValues() }),
          }, plain(modal.submit)) : null));
      backdrop.hidden = false;
    }
    // Errors come with the same view: show them without redrawing what was typed.
    for (const block of $("modal").querySelectorAll(".b-input")) {
      block.querySelector(".field-error").textContent = (modal.errors || {})[block.dataset.blockId] || "";
    }
  }

  // -- mail -----------------------------------------------------------------------------------

  function drawSent() {
    const sent = page.state.outbox;
    $("sent-count").textContent = sent.length ? String(sent.length) : "";
    const key = JSON.stringify(sent);
    if (page.drawn.sent === key) return;
    page.drawn.sent = key;
    const list = $("sent-list");
    list.replaceChildren();
    if (!sent.length) list.append(el("p", { className: "empty" }, "The bot has not sent any email yet."));
    for (const mail of [...sent].reverse()) {
      const headers = el("table", { className: "headers" }, mail.headers.map(([name, value]) =>
        el("tr", {}, el("th", {}, name), el("td", {}, value))));
      const item = el("article", { className: "mail", dataset: { number: String(mail.number) } },
        el("div", { className: "mail-subject" }, `#${mail.number} ${mail.subject}`), headers,
        el("pre", { className: "mail-text" }, mail.text));
      if (mail.html !== null) {
        // A sandboxed frame: its own origin, no scripts; the HTML is shown, never trusted.
        const frame = el("iframe", { className: "mail-html", title: "HTML part", sandbox: "" });
        frame.srcdoc = mail.html;
        item.append(el("details", {}, el("summary", {}, "HTML part"), frame));
      }
      list.append(item);
    }
    const select = $("reply-to");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "(a new email)"),
      sent.map((m) => el("option", { value: String(m.number), selected: String(m.number) === chosen }, `#${m.number} to ${m.to}: ${m.subject}`)));
  }

  // -- the rest of the page -------------------------------------------------------------------

  function drawChrome() {
    const s = page.state;
    const select = $("act-as");
    const teamKey = JSON.stringify([s.team, page.user]);
    if (page.drawn.team !== teamKey) {
      page.drawn.team = teamKey;
      select.replaceChildren(...s.team.map((m) => el("option", { value: m.id, selected: m.id === page.user }, `${m.name} (${m.manager ? "manager" : "staff"})`)));
      $("team").replaceChildren(...s.team.map((m) => el("li", {}, el("strong", {}, m.name), el("span", {}, ` ${m.title}`))));
    }
    const c = s.clock;
    $("clock").replaceChildren(el("div", { className: "clock-time" }, c.local), el("div", { className: "clock-meta" },
      `${c.timezone} · ${c.business_open ? "open" : "closed"}${c.shifted ? " · moved" : ""}`));
    $("support-address").textContent = s.support_address;
    const t = s.transport;
    $("transport").textContent = t.kind === "socket"
      ? `over Socket Mode, as the bot runs for real; ${t.connections === 1 ? "1 connection" : `${t.connections} connections`} opened so far`
      : "as signed HTTP requests to /slack/events";
    $("dm-count").textContent = s.dms.length ? String(s.dms.length) : "";
    for (const nav of document.querySelectorAll(".nav")) nav.classList.toggle("active", nav.dataset.view === page.view);
  }

  function showTab(tab) {
    page.tab = tab;
    for (const button of document.querySelectorAll(".tab")) button.classList.toggle("active", button.dataset.tab === tab);
    for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== `tab-${tab}`;
  }

  function showView(view) {
    page.view = view;
    if (view === "home") api("home", {});
    $("composer").hidden = view !== "channel";
    if (page.state) draw();
  }

  function draw() {
    drawChrome();
    drawFeed();
    drawThread();
    drawModal();
    drawSent();
  }

  async function refresh() {
    let response = await fetch(`/sandbox/api/state?user=${encodeURIComponent(page.user)}`);
    if (response.status === 400 && page.user) {
      // A user remembered from an earlier sandbox that this one does not have.
      page.user = "";
      response = await fetch("/sandbox/api/state?user=");
    }
    if (!response.ok) return;
    page.state = await response.json();
    page.user = page.state.me;
    draw();
    document.body.dataset.ready = "true";
  }

  // -- wiring ---------------------------------------------------------------------------------

  // The files the email form may carry, all together; the server holds the same line.
  const MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;

  function readBase64(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(file);
    });
  }

  // The page sends JSON only (see page.py), so files travel in it as base64.
  async function emailValues(form) {
    const values = {};
    for (const [key, value] of new FormData(form).entries()) if (typeof value === "string") values[key] = value;
    const files = [...$("email-files").files];
    const total = files.reduce((sum, f) => sum + f.size, 0);
    if (total > MAX_ATTACHMENT_BYTES) throw new Error(`Attachments are limited to ${MAX_ATTACHMENT_BYTES / 1048576} MB in all.`);
    values.attachments = await Promise.all(files.map(async (f) => ({ name: f.name, type: f.type, data: await readBase64(f) })));
    return values;
  }

  document.addEventListener("DOMContentLoaded", () => {
    showTab("mail");
    $("act-as").addEventListener("change", (ev) => {
      page.user = ev.target.value;
      localStorage.setItem("sandbox.user", page.user);
      page.drawn = {};
      page.modalKey = null;
      if (page.view === "home") api("home", {}); else refresh();
    });
    for (const nav of document.querySelectorAll(".nav")) nav.addEventListener("click", () => showView(nav.dataset.view));
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
    for (const jump of document.querySelectorAll("[data-jump]")) jump.addEventListener("click", () => api("clock", { to: jump.dataset.jump }));
    $("composer").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = $("composer-text").value.trim();
      if (!text) return;
      $("composer-text").value = "";
      api(text.startsWith("/") ? "command" : "write", { text });
    });
    $("thread-composer").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const text = $("thread-text").value.trim();
      if (!text || !page.thread) return;
      $("thread-text").value = "";
      if (text.startsWith("/")) api("command", { text }); else api("write", { text, thread_ts: page.thread });
    });
    $("email-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let values;
      try {
        values = await emailValues(ev.target);
      } catch (error) {
        toast(String(error.message || error));
        return;
      }
      const answer = await api("email", values);
      if (answer.ok) {
        $("email-files").value = "";
        toast("Sent to the support mailbox; the ticket appears in #support within a few seconds.");
      }
    });
    refresh();
    setInterval(() => { refresh().catch(() => {}); }, 1000);
  });
})();
