// Keeps a dashboard page up to date without a reload. It follows the
// live stream (server-sent events at the main element's data-source) and,
// on each `change` event, replaces #live with the same element of a fresh
// copy of the page. Not while a form field in it has the focus or holds an
// edit, which the fresh copy would wipe out (it tries again two seconds
// later), nor while the tab is hidden (it catches up when shown).
// EventSource reconnects on its own when the stream drops, and the page
// catches up once it is back; a stream refused for good (an error answer
// instead of the stream) is opened again after five seconds, then twice as
// long each time it is refused again, at most a minute apart. The root
// element carries data-stream="open" while the stream is open, "down"
// while it is not. A page whose #live is not marked data-live="on" (a
// confirmation) stays as it is.
(function(){
  const current = () => document.getElementById('live');
  const main = current();
  if(!main || main.dataset.live !== 'on' || !window.EventSource) return;
  let busy = false, again = false, stale = false, retry = null;
  function editing(live){
    const focused = document.activeElement;
    if(focused && live.contains(focused) && focused.matches('input,select,textarea')) return true;
    const edited = (field) => field.type !== 'hidden' && field.value !== field.defaultValue;
    const chosen = (select) => Math.max(0, [...select.options].findIndex((o) => o.defaultSelected));
    return [...live.querySelectorAll('input,textarea')].some(edited)
      || [...live.querySelectorAll('select')].some((s) => s.selectedIndex !== chosen(s));
  }
  async function refresh(){
    if(busy){ again = true; return; }
    clearTimeout(retry);
    if(document.hidden){ stale = true; return; }
    const live = current();
    if(!live || editing(live)){ retry = setTimeout(refresh, 2000); return; }
    busy = true;
    try{
      const r = await fetch(location.href,{headers:{'x-hopper-live':'1'},credentials:'same-origin'});
      if(r.ok){
        const doc = new DOMParser().parseFromString(await r.text(),'text/html');
        const fresh = doc.getElementById('live'), old = current();
        if(fresh && old && !editing(old)) old.replaceWith(fresh);
      }
    }catch(e){}
    busy = false;
    if(again){ again = false; refresh(); }
  }
  document.addEventListener('visibilitychange', () => {
    if(!document.hidden && stale){ stale = false; refresh(); }
  });
  let dropped = false, wait = 5000;
  function connect(){
    const events = new EventSource(main.dataset.source);
    events.addEventListener('change', refresh);
    events.addEventListener('open', () => {
      document.documentElement.dataset.stream = 'open';
      wait = 5000;
      if(dropped){ dropped = false; refresh(); }
    });
    events.addEventListener('error', () => {
      document.documentElement.dataset.stream = 'down';
      dropped = true;
      if(events.readyState === EventSource.CLOSED){
        setTimeout(connect, wait);
        wait = Math.min(2 * wait, 60000);
      }
    });
  }
  connect();
})();
